"""A frozen pretrained backbone trained fast: each clip's embeddings computed once, the head trained on them.

With ``[model] freeze = "backbone"`` and a model that exposes its patch embeddings as a layer
named ``embeddings`` (YAMNet), recomputing the frozen network every epoch is wasted work: its
output for a clip never changes. :func:`plan_embedding_fit` instead

1. computes the embeddings ``[patches, width]`` of every clip of the cache once, each clip cut
   as evaluation cuts it (centred to the model's input length; with ``data.windows``, into its
   evenly spaced windows, each embedded once and a training example of its own, as training
   windows are without ``random_windows``), and keeps them in
   ``{cache}/embeddings/{model}-{key}.npz``, written atomically; the key is the SHA-256 of the
   weights file, the front end and backbone (the layers' configs up to the embeddings) and the
   clip and window settings, so a change of any of them computes them again, and every fold of a
   cross-validation reuses them;
2. trains the head (the layers after ``embeddings``, shared with the whole model) on those
   arrays, with mixup and label smoothing ([augment]) and class weights as for any run; with
   ``[augment] embedding_views`` (:class:`coughclf.pretrained.embedding_views.EmbeddingView`) also
   on extra views of every training clip, shifted in time and gained, each embedded once and cached
   in a file of its own (its key adds the view's shift and gain), while validation and test clips
   are seen only as evaluation cuts them;
3. saves the whole model — front end, backbone, trained head — as the run's ``best.keras``, so
   evaluation, prediction, export, ensembles and distillation use it like any other run.

What needs the waveform cannot apply to cached embeddings, and is refused before any work:
augmentation layers, random window positions, resampled epochs (use ``balance.mode = "class_weight"``) and
between-class mixing. ``freeze = "none"`` fine-tunes end to end on the waveform instead.
"""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from coughclf.console import report
from coughclf.errors import CoughclfError
from coughclf.files import atomic_path
from coughclf.pretrained.embedding_views import embedding_views

EMBEDDINGS = "embeddings"
BATCH = 32


def uses_cached_embeddings(config, model):
    """Whether ``config``'s run trains ``model``'s head on cached embeddings: a frozen backbone
    with an ``embeddings`` layer. Embedding views asked of any other model are an error, not ignored."""
    cached = config["model"]["freeze"] == "backbone" and EMBEDDINGS in {layer.name for layer in model.layers}
    if not cached and embedding_views(config):
        raise CoughclfError(f"{config.source}: augment.embedding_views are views of cached embeddings, and "
                            f"{config['model']['name']} has no '{EMBEDDINGS}' layer to cache (yamnet has); "
                            "remove them and use augmentation layers (e.g. time_shift)")
    return cached


def check_cached_setup(config):
    """Refuse what cached embeddings cannot honour, naming the key and the fix."""
    from coughclf.mixing import mixing_from_augment

    where = f"{config.source}: with model.freeze = 'backbone' the head trains on cached embeddings, so"
    mixing, layers = mixing_from_augment(config["augment"], config.source)
    if layers:
        raise CoughclfError(f"{where} augmentation layers ({', '.join(layers)}) never run; remove them from "
                            "[augment] (mixup and label_smoothing apply) or set model.freeze = 'none'")
    if mixing.mode == "between_class":
        raise CoughclfError(f"{where} between-class mixing (which mixes waveforms) cannot apply; use mixup")
    if config["data"]["random_windows"]:
        raise CoughclfError(f"{where} each window is embedded once at its evenly spaced place; remove "
                            "data.random_windows")
    if config["balance"]["mode"] in ("oversample", "undersample"):
        raise CoughclfError(f"{where} epochs are not resampled; set balance.mode = 'class_weight' (or 'none')")


def embedding_key(config, model, seconds, view=None):
    """SHA-256 of what the cached embeddings depend on: weights file, layers up to the embeddings, clips
    and windows, and for a training :class:`EmbeddingView` its shift and gain."""
    weights = config["model"]["weights"]
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest() if weights else "random"
    upstream = embedding_model(model)
    identity = {"weights": digest, "layers": [layer.get_config() for layer in upstream.layers],
                "seconds": seconds, "sample_rate": config["data"]["sample_rate"]}
    if config["data"]["windows"]:
        identity.update(windows=config["data"]["windows"], clip_seconds=config["data"]["clip_seconds"])
    if view is not None:
        identity["view"] = asdict(view)
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def embedding_model(model):
    import keras

    return keras.Model(model.inputs, model.get_layer(EMBEDDINGS).output, name=f"{model.name}_{EMBEDDINGS}")


def cached_embeddings(config, cache, model, seconds, view=None):
    """``{clip id: [windows, patches, width] float32}`` of every clip in ``cache`` (one window without
    ``data.windows``): read, or computed and written (one row per window, its clip's id beside it); of the
    training :class:`EmbeddingView` ``view`` when given, else of the clips as evaluation cuts them. Views
    cover every clip too: each trains in some fold of a cross-validation, which computes them once."""
    from coughclf.inputs import make_inputs

    key = embedding_key(config, model, seconds, view)
    path = Path(cache.root) / EMBEDDINGS / f"{model.name}-{key[:16]}.npz"
    ids = [row["id"] for row in cache.manifest]
    if path.exists():
        try:
            with np.load(path) as stored:
                if set(ids) <= set(stored["ids"].tolist()):
                    return by_clip(stored["ids"].tolist(), stored["embeddings"])
        except (OSError, ValueError, KeyError):
            report(f"{path} is damaged; computing the embeddings again")
    what = (f"{len(ids)} clips shifted by {view.shift_seconds} s and gained by {view.gain_db} dB" if view
            else f"{len(ids)} clips")
    report(f"computing the embeddings of {what} once (frozen {model.name}) into {path}")
    upstream = embedding_model(model)
    dataset = make_inputs(config, cache, ids, mode="eval", seconds=seconds, with_ids=True, batch_size=BATCH)
    found_ids, arrays = [], []
    for inputs, _ in dataset:
        batch_ids, audio = inputs["id"].numpy().astype(str), inputs["audio"].numpy()
        if view is not None:
            audio = view.view(audio, cache.sample_rate)
        found_ids.extend(batch_ids)
        arrays.append(np.asarray(upstream.predict_on_batch(audio), np.float32))
    embeddings = np.concatenate(arrays)
    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(temporary, ids=np.array(found_ids), embeddings=embeddings)
    return by_clip(found_ids, embeddings)


def by_clip(ids, embeddings):
    """Rows of ``embeddings`` grouped by their clip ``ids`` (a clip's windows are consecutive rows, in order)."""
    grouped = {}
    for clip_id, row in zip(ids, embeddings):
        grouped.setdefault(clip_id, []).append(row)
    return {clip_id: np.stack(rows) for clip_id, rows in grouped.items()}


def head_of(model):
    """The layers after ``embeddings`` as a model of their own, sharing ``model``'s layers (and weights)."""
    import keras

    return keras.Model(model.get_layer(EMBEDDINGS).output, model.outputs, name=f"{model.name}_head")


def embedding_dataset(views, ids, labels, num_classes, *, batch_size, shuffle_seed=None):
    """Batches of ``(embeddings, one-hot)`` of ``ids`` in each of ``views`` (``{id: [windows, ...]}`` each):
    one epoch holds every window of every view of every clip, each an example."""
    import tensorflow as tf

    clips = [(embeddings[clip_id], label) for embeddings in views for clip_id, label in zip(ids, labels)]
    inputs = np.concatenate([windows for windows, _ in clips])
    targets = np.repeat(np.eye(num_classes, dtype=np.float32)[[label for _, label in clips]],
                        [len(windows) for windows, _ in clips], axis=0)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(inputs), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


def plan_embedding_fit(config, cache, split, model, compile_model, seconds, class_weight):
    """The :class:`coughclf.fitting.FitPlan` of a head trained on cached embeddings; ``model`` (built,
    frozen) is saved as best.keras, its head compiled by ``compile_model(head)``."""
    from coughclf.fitting import FitPlan
    from coughclf.mixing import mix_batches, mixing_from_augment
    from coughclf.runs import monitor_mode

    check_cached_setup(config)
    embeddings = cached_embeddings(config, cache, model, seconds)
    views = embedding_views(config)
    training_views = [embeddings, *(cached_embeddings(config, cache, model, seconds, view) for view in views)]
    labels = {row["id"]: int(row["label_index"]) for row in cache.manifest}
    num_classes = len(cache.classes)
    head = compile_model(head_of(model))
    batch_size = config["train"]["batch_size"]

    def dataset(part, part_views, seed=None):
        ids = split[part]
        return embedding_dataset(part_views, ids, [labels[i] for i in ids], num_classes, batch_size=batch_size,
                                 shuffle_seed=seed)

    train_data = dataset("train", training_views, config["train"]["seed"])
    mixing, _ = mixing_from_augment(config["augment"], config.source, config["train"]["seed"])
    if mixing.active:
        train_data = mix_batches(train_data, mixing, sample_rate=cache.sample_rate, class_weights=class_weight)
        class_weight = None
    trained_on = "cached embeddings (frozen backbone)" + (f", {len(views)} extra views" if views else "")
    return FitPlan(head, train_data, dataset("validation", [embeddings]) if split["validation"] else None,
                   config["train"]["monitor"], monitor_mode(config), class_weight=class_weight,
                   summary={"classes": cache.classes, "trained_on": trained_on},
                   saved_model=model)
