"""``coughclf train``: one experiment config → one run folder with the best model and its report.

A run folder (``saved_models/{name}-{timestamp}/`` unless given) holds::

    config.toml          the config actually used (defaults and --set overrides filled in)
    split.json           the clip ids of train / validation / test
    metadata.json        how metadata columns were encoded (models with a metadata input)
    best.keras           the model of the best epoch by [train].monitor
    history.csv/.json    one row per epoch (loss, metrics, learning rate)
    logs/                TensorBoard logs
    backup/              BackupAndRestore state while training runs (deleted at the end)
    training.json        written when fit has finished: epochs run, best epoch and value
    metrics.json, plots/ the evaluation on the test split (coughclf.evaluate)

Run the same command again with ``--run-dir`` on a run that was killed and it resumes
from the last finished epoch: the weights, optimiser state and epoch come back from
``backup/``, and the early-stopping and best-checkpoint state from ``history.json``,
so the resumed run stops after the same number of epochs as an uninterrupted one.
"""

import contextlib
import csv
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from coughclf.config import (accepted_model_options, check_data, config_from_dict, dump_config, dumps_config,
                             model_options)
from coughclf.errors import CoughclfError

STRATEGIES = ("default", "mirrored", "multiworker")
RUNS_ROOT = Path("saved_models")
PREPARED_ROOT = Path("prepared")
_MAXIMISED = ("acc", "auc", "precision", "recall", "f1")


# --- small file helpers shared by evaluate and cv ----------------------------------------------

def write_json(path, data):
    """Write ``data`` as JSON atomically (NaN written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(json_ready(data), indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def json_ready(value):
    """``value`` with every NaN and infinity replaced by None (JSON null), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def monitor_mode(config):
    """``"min"`` or ``"max"`` for [train].monitor (``auto``: max for accuracy/AUC/F1-like names)."""
    mode = config["train"]["mode"]
    if mode != "auto":
        return mode
    return "max" if any(part in config["train"]["monitor"] for part in _MAXIMISED) else "min"


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

        print(f"preparing {data['dataset']} from {data['data_dir']} into {cache_path} (once)")
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
        folds = splits.kfold(cache.manifest, k=split["k"], seed=split["seed"])
        if not 0 <= split["fold"] < len(folds):
            raise CoughclfError(f"{config.source}: split.fold = {split['fold']} but k-fold gives "
                                f"{len(folds)} folds (0 to {len(folds) - 1})")
        train_ids, test_ids = folds[split["fold"]]
        return with_validation(config, cache, train_ids, test_ids)
    if split["method"] == "fold" and (split["train_folds"] or split["val_folds"] or split["test_folds"]):
        return _explicit_folds(config, cache)
    return splits.split_ids(cache.manifest, method=split["method"], val=split["val"], test=split["test"],
                            seed=split["seed"], stratify=split["stratify"])


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


def with_validation(config, cache, train_ids, test_ids):
    """Carve a group-aware validation part (fraction split.val) out of ``train_ids``."""
    from coughclf import splits

    selected = set(train_ids)
    rows = [row for row in cache.manifest if row["id"] in selected]
    inner = splits.split_ids(rows, method="random", val=config["split"]["val"], test=0.0,
                             seed=config["split"]["seed"], stratify=config["split"]["stratify"])
    return {"train": inner["train"], "validation": inner["validation"], "test": list(test_ids)}


def model_clip_seconds(config):
    """The clip length to build the model for: one window when windowing, else [data].clip_seconds.

    None lets the model keep its report's input length.
    """
    data = config["data"]
    return data["window_seconds"] if data["windows"] else data["clip_seconds"]


def input_seconds(model, sample_rate):
    """Seconds of audio the model's ``audio`` input takes (what the pipeline cuts clips or windows to)."""
    audio = next(tensor for tensor in model.inputs if tensor.name.split(":")[0] != "metadata")
    return audio.shape[1] / sample_rate


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


def make_inputs(config, cache, ids, *, mode, seconds, metadata=None, with_ids=False, batch_size=None):
    """The tf.data pipeline of a run: ``(inputs, one-hot label)`` batches.

    ``seconds`` is the model's input length (:func:`input_seconds`): each clip is cut to
    it, or, when windowing, cut to [data].clip_seconds and then into windows of it.

    ``inputs`` is the waveform batch, or a dict ``{"audio", "metadata"[, "id"]}`` when the
    model has a metadata input or ids are asked for.
    """
    import tensorflow as tf

    from coughclf.pipeline import make_dataset

    data, balance = config["data"], config["balance"]
    training = mode == "train"
    resample = balance["mode"] if training and balance["mode"] in ("oversample", "undersample") else None
    windows = data["windows"]
    dataset = make_dataset(
        cache, ids, mode=mode, clip_seconds=data["clip_seconds"] if windows else seconds, windows=windows,
        window_seconds=seconds if windows else None, batch_size=batch_size or config["train"]["batch_size"],
        balance=resample, balance_target=balance["target"] if resample else None,
        max_repeats=balance["max_repeats"] if resample == "oversample" else None,
        balance_within=balance["within"] if resample and balance["within"] else None,
        seed=config["train"]["seed"], with_ids=True, shuffle_buffer=data["shuffle_buffer"],
        random_crops=data["random_crops"])
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


# --- model ---------------------------------------------------------------------------------------

def build_model(config, num_classes, sample_rate, metadata_dim=0):
    """The configured model, with its front end and augmentation inside (waveform input)."""
    from coughclf import models

    model_name = config["model"]["name"]
    spec = models.spec(model_name)
    input_mode = config["model"]["input_mode"]
    default_frontend = spec.defaults.get("frontend")
    if input_mode == "features" and default_frontend is not None:
        raise CoughclfError(f"{config.source}: model.input_mode = 'features' but training feeds raw audio "
                            f"to {model_name}; use input_mode = 'waveform' (log-mel inside the model)")
    options = {"input_mode": input_mode, "num_classes": num_classes, "sample_rate": sample_rate,
               **model_options(config)}
    if model_clip_seconds(config) is not None:
        options["clip_seconds"] = model_clip_seconds(config)
    if config["frontend"]:
        if default_frontend is None:
            raise CoughclfError(f"{config.source}: [frontend] is set but {model_name} reads the raw "
                                "waveform and has no spectrogram front end; remove [frontend]")
        options["frontend"] = {**default_frontend, **config["frontend"]}
    if config["augment"]:
        from coughclf.layers.augment import build_augmentation

        waveform_layers, spec_layers = build_augmentation(config["augment"])
        if waveform_layers:
            options["waveform_augmentation"] = waveform_layers
        if spec_layers:
            options["spec_augmentation"] = spec_layers
    if metadata_dim:
        options["metadata_dim"] = metadata_dim
    accepted = accepted_model_options(model_name)
    rejected = [key for key in options if key not in accepted]
    if "metadata_dim" in rejected:
        raise CoughclfError(f"{config.source}: data.metadata is set but {model_name} has no metadata input; "
                            "remove data.metadata or use resnet18/resnet34/ast")
    if "clip_seconds" in rejected:
        raise CoughclfError(f"{config.source}: {model_name} has a fixed input length; remove "
                            "data.clip_seconds / data.window_seconds")
    return models.build(model_name, **{k: v for k, v in options.items() if k not in rejected})


def make_optimizer(config):
    """The optimiser of [optimizer] (``weight_decay`` is decoupled, as Keras applies it)."""
    import keras

    settings = config["optimizer"]
    common = {"learning_rate": settings["lr"], "clipnorm": settings["clipnorm"],
              "weight_decay": settings["weight_decay"] or None}
    if settings["ema"]:
        common.update(use_ema=True, ema_momentum=settings["ema"])
    if settings["name"] == "adam":
        return keras.optimizers.Adam(**common)
    if settings["name"] == "adamw":
        return keras.optimizers.AdamW(**{**common, "weight_decay": settings["weight_decay"]})
    if settings["name"] == "sgd":
        return keras.optimizers.SGD(momentum=settings["momentum"], **common)
    return keras.optimizers.RMSprop(momentum=settings["momentum"], **common)


def jit_compile(config):
    """Whether to XLA-compile the train step ([train] jit_compile).

    "auto" compiles on accelerators and other backends only: on CPU, TensorFlow's own kernels ran
    the models' train steps faster than XLA here (cough_crnn: ~305 vs ~495 ms of CPU per step).
    """
    setting = config["train"]["jit_compile"]
    if setting != "auto":
        return setting == "on"
    import keras

    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))


def compile_model(model, config, num_classes):
    """Cross-entropy on one-hot labels; accuracy and ROC AUC (macro one-vs-rest) as metrics."""
    import keras

    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc")],
        jit_compile=jit_compile(config),
    )
    return model


def learning_rate_at(config, epoch):
    """The scheduled learning rate of ``epoch`` (epoch-wise, so a resumed run continues it).

    The first ``warmup_epochs`` ramp linearly up to ``lr`` (``lr · (epoch + 1) / (warmup + 1)``:
    deep recurrent stacks under CTC can stall for good when the full rate hits their random
    start); the schedule then runs over the remaining epochs.
    """
    settings = config["optimizer"]
    base, floor, warmup = settings["lr"], settings["min_lr"], settings["warmup_epochs"]
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    epoch, epochs = epoch - warmup, config["train"]["epochs"] - warmup
    if settings["schedule"] == "cosine":
        return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    if settings["schedule"] == "exponential":
        return max(floor, base * settings["decay_rate"] ** epoch)
    return base


def weight_averaging_callbacks(config):
    """``[SwapEMAWeights]`` when ``optimizer.ema`` is set, else ``[]``: placed after
    ``BackupAndRestore`` (which keeps the raw weights and the average) and before the
    callbacks that validate or save, so that those see the averaged weights."""
    import keras

    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config["optimizer"]["ema"] else []


def schedule_callback(config, monitor, mode):
    """The learning-rate callback of ``[optimizer]``: ``ReduceLROnPlateau`` on ``monitor`` for
    ``schedule = "plateau"``, else :func:`learning_rate_at` epoch by epoch."""
    import keras

    settings = config["optimizer"]
    if settings["schedule"] == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=settings["decay_rate"],
                                                 patience=max(1, config["train"]["patience"] // 2),
                                                 min_lr=settings["min_lr"])
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rate_at(config, epoch))


# --- strategies and run folders -----------------------------------------------------------------

def make_strategy(name):
    """A ``tf.distribute`` strategy: default (one device), mirrored (all local GPUs) or multiworker.

    ``multiworker`` reads the cluster from the ``TF_CONFIG`` environment variable; create
    it before any other TensorFlow work in the process.
    """
    import tensorflow as tf

    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise CoughclfError("--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                                "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                                "\"task\": {\"type\": \"worker\", \"index\": 0}}' on the first machine")
        return _multi_worker_strategy()
    raise CoughclfError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _multi_worker_strategy():
    """MultiWorkerMirroredStrategy mended for the two ways Keras 3's fit calls ``strategy.reduce``.

    ``Model.fit`` reduces a whole ``(inputs, labels)`` batch in one call (to build the
    model symbolically) and reduces the scalar metrics of each step with ``axis=0``;
    MultiWorkerMirroredStrategy reduces one tensor at a time and has no axis 0 on a
    scalar (keras-team/keras#20585). Reducing per tensor, scalars over replicas only,
    is what both calls mean.
    """
    import tensorflow as tf

    class NestedReduceStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def reduce_one(tensor):
                local = (self.experimental_local_results(tensor)[0]
                         if isinstance(tensor, tf.distribute.DistributedValues) else tensor)
                return parent.reduce(reduce_op, tensor, axis if local.shape.rank else None)

            return tf.nest.map_structure(reduce_one, value)

    return NestedReduceStrategy()


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def new_run_dir(config):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RUNS_ROOT / f"{config['name']}-{stamp}"


def claim_run_dir(config, run_dir):
    """Create ``run_dir`` with config.toml, or check that a resumed run uses the same config.

    The folder stays locked to this process until it exits (an advisory ``flock`` on
    ``run_dir/.lock``, which the system releases even after a SIGKILL, so a killed run resumes):
    a second process started on the same folder fails at once instead of training the same
    epochs beside the first and resuming from its half-written backups.
    """
    import tomllib

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _lock_run_dir(run_dir)
    saved = run_dir / "config.toml"
    if saved.exists():
        # Both sides with today's defaults filled in: a key added to the schema since the run
        # started, at its default, is not a different config.
        previous = config_from_dict(tomllib.loads(saved.read_text(encoding="utf-8")), str(saved), check_names=False)
        if tomllib.loads(dumps_config(previous)) != tomllib.loads(dumps_config(config)):
            raise CoughclfError(f"{run_dir} holds a run of a different config ({saved}); resume it with the "
                                "same config and --set values, or start it in another folder")
    else:
        dump_config(config, saved)
    return run_dir


_RUN_DIR_LOCKS = {}  # resolved folder -> the open lock file, held until the process exits


def _lock_run_dir(run_dir):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): folders are not locked
        return
    key = run_dir.resolve()
    if key in _RUN_DIR_LOCKS:
        return
    handle = open(key / ".lock", "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise CoughclfError(f"{run_dir} is in use by {holder}; wait for it to finish (or stop it), or give "
                            "this run another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}\n")
    handle.flush()
    _RUN_DIR_LOCKS[key] = handle


class TrainingRun(NamedTuple):
    """One process's part of a training run (see :func:`training_run`)."""

    strategy: object  # the tf.distribute.Strategy to build, compile and fit in
    run_dir: Path     # the run folder the chief writes
    work_dir: Path    # the claimed folder this process trains in (run_dir on the chief)
    chief: bool


@contextlib.contextmanager
def training_run(config, run_dir=None, strategy=None):
    """Set up this process's part of training ``config``; yields a :class:`TrainingRun`.

    ``strategy`` is a ``tf.distribute.Strategy`` or its name (:func:`make_strategy`);
    ``run_dir`` defaults to a new ``saved_models/{name}-{timestamp}``. The chief trains
    in the run folder itself; the other workers of a multi-worker cluster must write
    their checkpoints somewhere too, but only the chief may write the run, so they
    train in a temporary folder that is removed on exit.
    """
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    chief = is_chief(strategy)
    final_dir = Path(run_dir) if run_dir else new_run_dir(config)
    work_dir = final_dir if chief else Path(tempfile.mkdtemp(prefix="coughclf-worker-"))
    try:
        yield TrainingRun(strategy, final_dir, claim_run_dir(config, work_dir), chief)
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)


# --- callbacks ----------------------------------------------------------------------------------

def _history_rows(run_dir):
    path = Path(run_dir) / "history.json"
    return read_json(path) if path.exists() else []


def backup_epoch(backup_dir):
    """The epoch BackupAndRestore will resume at (0 when there is no backup)."""
    path = Path(backup_dir) / "training_metadata.json"
    return int(read_json(path)["epoch"]) if path.exists() else 0


def _callbacks(config, run_dir, resumed_rows, chief):
    import keras

    class EpochHistory(keras.callbacks.Callback):
        """history.csv/json rewritten atomically each epoch; rows of a resumed run continue the old ones."""

        def __init__(self, rows):
            super().__init__()
            self.rows = list(rows)

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch, "learning_rate": float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))}
            row.update({key: float(value) for key, value in (logs or {}).items() if key != "learning_rate"})
            self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
            write_json(Path(run_dir) / "history.json", self.rows)
            columns = list(dict.fromkeys(key for r in self.rows for key in r))
            temporary = Path(run_dir) / "history.csv.tmp"
            with open(temporary, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, columns)
                writer.writeheader()
                writer.writerows(self.rows)
            temporary.replace(Path(run_dir) / "history.csv")

    class BestModel(keras.callbacks.ModelCheckpoint):
        """ModelCheckpoint writing best.keras atomically, so a kill mid-save leaves the previous best."""

        def __init__(self, target, **kwargs):
            super().__init__(str(Path(target).with_name("best.partial.keras")), **kwargs)
            self.target = Path(target)

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            partial = Path(self.filepath)
            if partial.exists():
                partial.replace(self.target)

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping that starts from the best value and patience count of the epochs already run."""

        def __init__(self, restored_best, restored_wait, **kwargs):
            super().__init__(**kwargs)
            self.restored_best, self.restored_wait = restored_best, restored_wait

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.restored_best is not None:
                self.best, self.wait = self.restored_best, self.restored_wait

    train = config["train"]
    monitor, mode = train["monitor"], monitor_mode(config)
    pick = max if mode == "max" else min
    seen = [row for row in resumed_rows if row.get(monitor) is not None]
    best_row = pick(seen, key=lambda row: row[monitor]) if seen else None
    best_value = best_row[monitor] if best_row else None
    callbacks = [
        # First, so that on resume the epoch is restored before any other callback starts.
        keras.callbacks.BackupAndRestore(str(Path(run_dir) / "backup"), double_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
        *weight_averaging_callbacks(config),
        schedule_callback(config, monitor, mode),
        BestModel(Path(run_dir) / "best.keras", monitor=monitor, mode=mode, save_best_only=True,
                  initial_value_threshold=best_value),
        EpochHistory(resumed_rows),
    ]
    if train["patience"]:
        wait = (resumed_rows[-1]["epoch"] - best_row["epoch"]) if best_row else 0
        callbacks.append(ResumableEarlyStopping(best_value, wait, monitor=monitor, mode=mode,
                                                patience=train["patience"]))
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(Path(run_dir) / "logs"), write_graph=False,
                                                     profile_batch=0))
    return callbacks


# --- training -----------------------------------------------------------------------------------

def train(config, run_dir=None, strategy=None, *, split=None, callbacks=(), evaluate_after=True):
    """Train the experiment ``config`` and write its run folder; returns the run folder.

    Args:
        config: an :class:`coughclf.config.ExperimentConfig` (``load_config``).
        run_dir: the run folder; a folder of an unfinished run resumes it. Default
            ``saved_models/{name}-{timestamp}``.
        strategy: a ``tf.distribute.Strategy`` or its name (``"default"``, ``"mirrored"``,
            ``"multiworker"``); the model is built and compiled in its scope and the
            batch size is the global batch. Only the chief writes ``run_dir``.
        split: ``{"train", "validation", "test"}`` clip ids (cross-validation); default [split].
        callbacks: extra Keras callbacks, run after the run's own.
        evaluate_after: evaluate the best model on the test split (metrics.json, plots).

    Example::

        from coughclf.config import load_config
        from coughclf.train import train
        run = train(load_config("experiments/kws_cnn.toml", ["train.epochs=3"]))
    """
    if config["task"] == "ctc":
        from coughclf.speech import train_ctc

        return train_ctc(config, run_dir, strategy)
    import keras

    with training_run(config, run_dir, strategy) as run:
        fit_run(config, run.work_dir, run.strategy, split=split, callbacks=callbacks)
    keras.backend.clear_session()
    if run.chief and evaluate_after:
        from coughclf.evaluate import evaluate

        evaluate(run.run_dir)
    return run.run_dir


def fit_run(config, run_dir, strategy, *, split=None, callbacks=()):
    """The training of :func:`train` in an already claimed ``run_dir`` (skipped if it finished)."""
    import keras
    import tensorflow as tf

    from coughclf.pipeline import class_weights

    run_dir = Path(run_dir)
    if (run_dir / "training.json").exists():
        print(f"{run_dir} has finished training; evaluating only")
        return read_json(run_dir / "training.json")
    keras.utils.set_random_seed(config["train"]["seed"])
    cache = open_data(config)
    if split is None:
        split_path = run_dir / "split.json"
        split = read_json(split_path) if split_path.exists() else split_clips(config, cache)
    write_json(run_dir / "split.json", split)
    if not split["validation"] and config["train"]["monitor"].startswith("val_"):
        raise CoughclfError(f"{config.source}: no validation clips (split.val = {config['split']['val']}) but "
                            f"train.monitor = {config['train']['monitor']!r}; set split.val > 0 or monitor "
                            "a training metric")
    rows = {row["id"]: row for row in cache.manifest}
    metadata = None
    if config["data"]["metadata"]:
        metadata = fit_metadata_encoding([rows[i] for i in split["train"]], config["data"]["metadata"])
        write_json(run_dir / "metadata.json", metadata)

    num_classes = len(cache.classes)
    with strategy.scope():
        model = build_model(config, num_classes, cache.sample_rate, metadata_width(metadata or []))
        compile_model(model, config, num_classes)
    seconds = input_seconds(model, cache.sample_rate)
    train_data = make_inputs(config, cache, split["train"], mode="train", seconds=seconds, metadata=metadata)
    validation_data = (make_inputs(config, cache, split["validation"], mode="eval", seconds=seconds,
                                   metadata=metadata) if split["validation"] else None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        # Shard batches, not files: a small cache has fewer shard files than workers.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data = train_data.with_options(options)
        validation_data = validation_data.with_options(options) if validation_data else None
    steps = config["train"]["steps_per_epoch"]
    if steps:
        train_data = train_data.repeat()
    weights = None
    if config["balance"]["mode"] == "class_weight":
        weights = class_weights([int(rows[i]["label_index"]) for i in split["train"]],
                                config["balance"]["formula"])
    resumed_at = backup_epoch(run_dir / "backup")
    resumed_rows = [row for row in _history_rows(run_dir) if row["epoch"] < resumed_at]
    if resumed_at:
        print(f"resuming {run_dir} at epoch {resumed_at + 1}")
    started = time.time()
    history = model.fit(train_data, validation_data=validation_data, epochs=config["train"]["epochs"],
                        steps_per_epoch=steps, class_weight=weights, verbose="auto", shuffle=False,
                        callbacks=[*_callbacks(config, run_dir, resumed_rows, is_chief(strategy)),
                                   *callbacks])
    rows_run = _history_rows(run_dir)
    monitor, mode = config["train"]["monitor"], monitor_mode(config)
    seen = [row for row in rows_run if row.get(monitor) is not None]
    best = (max if mode == "max" else min)(seen, key=lambda row: row[monitor]) if seen else None
    summary = {
        "epochs_run": len(rows_run),
        "epochs_this_session": len(history.epoch),
        "resumed_at_epoch": resumed_at,
        "stopped_early": len(rows_run) < config["train"]["epochs"],
        "terminated_on_nan": any(math.isnan(v) for row in rows_run for k, v in row.items() if k == "loss"),
        "monitor": monitor,
        "best_epoch": best["epoch"] if best else None,
        "best_value": best[monitor] if best else None,
        "seconds_this_session": round(time.time() - started, 1),
        "parameters": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        "classes": cache.classes,
        "cache": str(cache.root),
    }
    if not (run_dir / "best.keras").exists():
        raise CoughclfError(f"training in {run_dir} never improved {monitor} (NaN loss?); lower "
                            "optimizer.lr or check the data")
    write_json(run_dir / "training.json", summary)
    return summary
