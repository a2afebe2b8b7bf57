"""The inputs of a run: its prepared data, its split, its metadata encoding and the datasets it feeds.

Everything here is decided from the config and the cache, before a model exists:
:func:`open_data` (prepared on first use), :func:`split_clips` / :func:`run_split` (the
split.json of a run), :func:`fit_metadata_encoding` (metadata.json) and
:func:`make_inputs`, the tf.data pipeline of a classifier.
"""

import json
import math
from pathlib import Path
from typing import NamedTuple

from coughclf.config import check_data, frontend_values
from coughclf.console import report
from coughclf.errors import CoughclfError
from coughclf.files import read_json, write_json

PREPARED_ROOT = Path("prepared")
SPLITS = ("train", "validation", "test", "all")


# --- data ----------------------------------------------------------------------------------------

def default_cache_path(config):
    """Where a cache prepared on first use goes: one folder per dataset, data folder, options and listing.

    The listing (ids, labels, groups, folds, splits, transcripts as the loader gives them now) is
    part of the key, so a loader that changed, or a data folder that gained files, gets a fresh
    cache instead of silently reusing a stale manifest. Listing decodes nothing: milliseconds.
    """
    import hashlib

    data = config["data"]
    listing = sorted((clip.id, clip.label, clip.group, clip.fold, clip.split, clip.transcript)
                     for clip in listed_clips(config))
    identity = [str(Path(data["data_dir"]).resolve()), data["options"], data["sample_rate"], data["prepare"]]
    if data["extra_train"]:
        identity.append([{**entry, "data_dir": str(Path(entry["data_dir"]).resolve())}
                         for entry in data["extra_train"]])
    key = json.dumps([*identity, listing], sort_keys=True, default=str)
    return PREPARED_ROOT / f"{data['dataset']}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def listed_clips(config):
    """The clips the run's cache holds: [data].dataset's, then those of every [[data.extra_train]]."""
    from coughclf import datasets
    from coughclf.datasets.extra import combined_clips

    data = config["data"]
    clips = datasets.get(data["dataset"]).list_clips(Path(data["data_dir"]), **data["options"])
    return combined_clips(data["dataset"], clips, data["extra_train"])


def open_data(config):
    """The run's prepared cache; prepared from [data].data_dir first if missing or incomplete."""
    from coughclf.cache import open_cache

    check_data(config)
    data = config["data"]
    cache_path = Path(data["cache"]) if data["cache"] else default_cache_path(config)
    if not (cache_path / "manifest.csv").exists():
        from coughclf.prepare import prepare

        report(f"preparing {data['dataset']} from {data['data_dir']} into {cache_path} (once; it is not "
               "complete there)")
        if data["extra_train"]:
            from coughclf import datasets
            from coughclf.prepare import prepare_clips

            prepare_clips(listed_clips(config), cache_path, dataset_name=data["dataset"],
                          task=datasets.get(data["dataset"]).task, options=data["options"],
                          sample_rate=data["sample_rate"], **data["prepare"])
        else:
            prepare(data["dataset"], data["data_dir"], cache_path, sample_rate=data["sample_rate"],
                    options=data["options"], **data["prepare"])
    cache = open_cache(cache_path)
    if cache.sample_rate != data["sample_rate"]:
        raise CoughclfError(f"{config.source}: data.sample_rate = {data['sample_rate']} but the cache "
                            f"{cache_path} holds {cache.sample_rate} Hz audio; set data.sample_rate = "
                            f"{cache.sample_rate} or prepare the cache again")
    return cache


def run_data(config, run_dir):
    """The cache a run trained on: the absolute path its training.json records, else :func:`open_data`.

    The run's config may name its data relative to the folder training ran in; the recorded
    path holds wherever evaluation runs from. When that cache has gone, the config's data
    is opened (prepared again, which :func:`open_data` says).
    """
    from coughclf.cache import open_cache

    summary = Path(run_dir) / "training.json"
    recorded = read_json(summary).get("cache") if summary.exists() else None
    if recorded and (Path(recorded) / "manifest.csv").exists():
        return open_cache(recorded)
    if recorded:
        report(f"{run_dir} trained on the cache {recorded}, which is gone (or is relative to another folder); "
               "opening the data of its config instead")
    return open_data(config)


def split_clips(config, cache):
    """``{"train", "validation", "test"}`` clip ids for [split].

    ``kfold`` trains on fold ``split.fold`` of the k-fold split; ``fold`` with any of
    ``train_folds`` / ``val_folds`` / ``test_folds`` assigns the dataset's predefined
    folds explicitly (the ESC-10 report's fold 1 test, folds 3-5 train), otherwise the
    highest fold is the test set.
    """
    from coughclf.datasets.extra import with_extra, without_extra

    main, extra_ids = without_extra(cache)
    return with_extra(_split_main(config, main), extra_ids)


def _split_main(config, cache):
    from coughclf import splits

    split = config["split"]
    if split["method"] == "kfold":
        folds = splits.kfold(cache.manifest, k=split["k"], seed=split["seed"], group_by=by_group(config))
        if not 0 <= split["fold"] < len(folds):
            raise CoughclfError(f"{config.source}: split.fold = {split['fold']} but k-fold gives "
                                f"{len(folds)} folds (0 to {len(folds) - 1})")
        train_ids, test_ids = folds[split["fold"]]
        return with_validation(config, cache, train_ids, test_ids)
    if split["method"] == "fold" and (split["train_folds"] or split["val_folds"] or split["test_folds"]):
        return _explicit_folds(config, cache)
    return splits.split_ids(cache.manifest, method=split["method"], val=split["val"], test=split["test"],
                            seed=split["seed"], stratify=split["stratify"], group_by=by_group(config))


def _explicit_folds(config, cache):
    split = config["split"]
    folds = {row["id"]: int(float(row["fold"])) for row in cache.manifest if row.get("fold") not in ("", None)}
    if len(folds) < len(cache.manifest):
        raise CoughclfError(f"{config.source}: split.method = 'fold' needs a dataset with predefined folds; "
                            f"{cache.root} has clips without a fold")
    chosen = set(split["train_folds"]) | set(split["val_folds"]) | set(split["test_folds"])
    missing = sorted(chosen - set(folds.values()))
    if missing:
        raise CoughclfError(f"{config.source}: split folds {missing} do not exist; the cache has folds "
                            f"{sorted(set(folds.values()))}")

    def members(fold_numbers, default_exclude=()):
        if fold_numbers:
            return [i for i, fold in folds.items() if fold in fold_numbers]
        return [i for i, fold in folds.items() if fold not in default_exclude]

    test_ids = members(split["test_folds"])
    train_ids = members(split["train_folds"], default_exclude=set(split["test_folds"]) | set(split["val_folds"]))
    if split["val_folds"]:
        return {"train": train_ids, "validation": members(split["val_folds"]), "test": test_ids}
    return with_validation(config, cache, train_ids, test_ids)


def by_group(config):
    """Whether splits keep each group (speaker, patient) on one side: split.group_by."""
    return config["split"]["group_by"] != "none"


def describe_split(cache, split):
    """One line: the clips and groups of each part of ``split``, e.g. ``train 24 clips (6 groups), ...``."""
    group = {row["id"]: row.get("group") or row["id"] for row in cache.manifest}
    return ", ".join(f"{part} {len(ids)} clips ({len({group[clip_id] for clip_id in ids})} groups)"
                     for part, ids in split.items())


def with_validation(config, cache, train_ids, test_ids):
    """Carve a group-aware validation part (fraction split.val) out of ``train_ids``."""
    from coughclf import splits

    selected = set(train_ids)
    rows = [row for row in cache.manifest if row["id"] in selected]
    inner = splits.split_ids(rows, method="random", val=config["split"]["val"], test=0.0,
                             seed=config["split"]["seed"], stratify=config["split"]["stratify"],
                             group_by=by_group(config))
    return {"train": inner["train"], "validation": inner["validation"], "test": list(test_ids)}


def run_split(config, cache, run_dir, split=None):
    """The split of the run in ``run_dir``: ``split`` if given, else its split.json, else [split]'s.

    Written to split.json, so that a resumed run and its evaluation use the same clips.
    """
    split_path = Path(run_dir) / "split.json"
    if split is None:
        split = read_json(split_path) if split_path.exists() else split_clips(config, cache)
    write_json(split_path, split)
    return split


def selected_ids(run_dir, cache, split, external):
    """The clip ids of ``split`` (a split of the run's split.json, or ``"all"``) present in ``cache``.

    ``external``: ``cache`` is not the run's own, which the error on finding none suggests.
    """
    if split not in SPLITS:
        raise CoughclfError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return [row["id"] for row in cache.manifest]
    chosen = read_json(Path(run_dir) / "split.json")[split]
    present = {row["id"] for row in cache.manifest}
    ids = [clip_id for clip_id in chosen if clip_id in present]
    if not ids:
        hint = " (another dataset? use --split all)" if external else ""
        raise CoughclfError(f"none of the {len(chosen)} {split} clips of {run_dir} are in {cache.root}{hint}")
    return ids



class ModelInput(NamedTuple):
    """The input of a run's model, decided once (:func:`model_input`) and passed to what builds the
    model, what feeds it and what draws its features."""

    sample_rate: int        # [data].sample_rate (open_data checks the cache holds it)
    seconds: float | None   # audio per example: one window when windowing, else the clip; None when
                            # the builder fixes its input length itself (no clip_seconds option: ast)
    frontend: dict | None   # LogMelSpectrogram options of the front end; None for raw-waveform models


def model_input(config):
    """The :class:`ModelInput` of ``config``: [data] and [frontend] over the model's registered defaults."""
    from coughclf import models

    name, data = config["model"]["name"], config["data"]
    defaults = models.spec(name).defaults
    frontend = None if defaults.get("frontend") is None else {**defaults["frontend"],
                                                              **frontend_values(config["frontend"])}
    seconds = data["window_seconds"] if data["windows"] else data["clip_seconds"]
    if seconds is None and "clip_seconds" in models.accepted_options(name):
        seconds = defaults.get("clip_seconds")
    return ModelInput(data["sample_rate"], seconds, frontend)


def input_seconds(decided, model):
    """Seconds of audio per example: ``decided.seconds``, or for a builder that fixes its own input
    length, what the built ``model``'s ``audio`` input takes."""
    if decided.seconds is not None:
        return decided.seconds
    audio = next(tensor for tensor in model.inputs if tensor.name.split(":")[0] != "metadata")
    return audio.shape[1] / decided.sample_rate


def fit_metadata_encoding(rows, columns):
    """How to turn manifest columns into the model's ``metadata`` vector, learnt on training rows.

    Numeric columns are standardised (missing: 0, the training mean); other columns are
    one-hot over the training values (unseen or missing: all zeros).
    """
    encoding = []
    for column in columns:
        if rows and column not in rows[0]:
            raise CoughclfError(f"data.metadata names {column!r}, not a manifest column; available: "
                                f"{', '.join(c for c in rows[0] if c.startswith('meta_'))}")
        values = [row[column] for row in rows if row[column] not in ("", None)]
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            encoding.append({"column": column, "kind": "categorical", "categories": sorted(set(values))})
            continue
        mean = sum(numbers) / len(numbers) if numbers else 0.0
        spread = math.sqrt(sum((v - mean) ** 2 for v in numbers) / len(numbers)) if numbers else 0.0
        encoding.append({"column": column, "kind": "numeric", "mean": mean, "std": spread or 1.0})
    return encoding


def encode_metadata(encoding, row):
    """One manifest row → its metadata vector (list of floats)."""
    vector = []
    for entry in encoding:
        value = row.get(entry["column"], "")
        if entry["kind"] == "numeric":
            vector.append(0.0 if value in ("", None) else (float(value) - entry["mean"]) / entry["std"])
        else:
            vector.extend(1.0 if value == category else 0.0 for category in entry["categories"])
    return vector


def metadata_width(encoding):
    return sum(1 if e["kind"] == "numeric" else len(e["categories"]) for e in encoding)


def dataset_options(config, *, mode, seconds, batch_size=None):
    """The :class:`coughclf.pipeline.DatasetOptions` of a classifier run's ``mode`` split ([data],
    [balance], [train]), ids included; ``seconds`` as for :func:`make_inputs`."""
    from coughclf.pipeline import DatasetOptions

    data, balance = config["data"], config["balance"]
    resample = balance["mode"] if mode == "train" and balance["mode"] in ("oversample", "undersample") else None
    windows = data["windows"]
    return DatasetOptions(
        mode=mode, clip_seconds=data["clip_seconds"] if windows else seconds, windows=windows,
        window_seconds=seconds if windows else None, batch_size=batch_size or config["train"]["batch_size"],
        balance=resample, balance_target=balance["target"] if resample else None,
        max_repeats=balance["max_repeats"] if resample == "oversample" else None,
        balance_within=balance["within"] if resample and balance["within"] else None,
        seed=config["train"]["seed"], with_ids=True, shuffle_buffer=data["shuffle_buffer"],
        random_crops=data["random_crops"], random_windows=data["random_windows"])


def make_inputs(config, cache, ids, *, mode, seconds, metadata=None, with_ids=False, batch_size=None):
    """The tf.data pipeline of a run: ``(inputs, one-hot label)`` batches.

    ``seconds`` is the model's input length (:func:`input_seconds`): each clip is cut to
    it, or, when windowing, cut to [data].clip_seconds and then into windows of it
    (:func:`dataset_options`).

    ``inputs`` is the waveform batch, or a dict ``{"audio", "metadata"[, "id"]}`` when the
    model has a metadata input or ids are asked for.
    """
    import tensorflow as tf

    from coughclf.pipeline import make_dataset

    dataset = make_dataset(cache, ids, dataset_options(config, mode=mode, seconds=seconds, batch_size=batch_size))
    num_classes = len(cache.classes)
    lookup = None
    if metadata:
        rows = {row["id"]: row for row in cache.manifest}
        ids_tensor = tf.constant(list(rows))
        vectors = tf.constant([encode_metadata(metadata, row) for row in rows.values()], tf.float32)
        lookup = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ids_tensor, tf.range(len(rows), dtype=tf.int64)), -1)

    def arrange(inputs, label):
        arranged = {"audio": inputs["audio"]}
        if lookup is not None:
            arranged["metadata"] = tf.gather(vectors, lookup.lookup(inputs["id"]))
        if with_ids:
            arranged["id"] = inputs["id"]
        features = arranged if len(arranged) > 1 else arranged["audio"]
        return features, tf.one_hot(label, num_classes)

    return dataset.map(arrange, num_parallel_calls=tf.data.AUTOTUNE)
