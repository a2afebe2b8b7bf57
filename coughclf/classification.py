"""The classification task: the configured classifier, the data it trains on, its evaluation.

:func:`plan_fit` is what :func:`coughclf.fitting.fit_run` asks of the task (model,
datasets, monitor, class weights); :func:`evaluate_run` writes a run's metrics.json,
predictions and plots (``coughclf evaluate`` on a classifier's run).

The results dict (also ``metrics.json``) holds the metrics of
:func:`coughclf.metrics.classification_metrics` per clip; when the pipeline cuts clips
into windows, the clip's probabilities are the mean of its windows' and the per-window
metrics are under ``"window_level"``. ``"groups"`` holds the same metrics within each
value of every [metrics].group_by manifest column (e.g. ``meta_source``).
"""

from pathlib import Path

import numpy as np

from coughclf import metrics as metric_functions
from coughclf import plots
from coughclf.config import accepted_model_options, model_options
from coughclf.ensemble import ensemble_info, is_cv_folder, load_fold_ensemble
from coughclf.errors import CoughclfError
from coughclf.files import atomic_path, json_ready, read_json, write_json
from coughclf.fitting import FitPlan
from coughclf.inputs import (fit_metadata_encoding, input_seconds, make_inputs, metadata_width, model_input,
                             open_data, selected_ids)
from coughclf.mixing import mix_batches, mixing_from_augment
from coughclf.optim import jit_compile, make_optimizer
from coughclf.runs import best_model_path, evaluation_tag, monitor_mode, run_config


# --- training -----------------------------------------------------------------------------------

def build_model(config, num_classes, sample_rate, metadata_dim=0):
    """The configured model, with its front end and augmentation inside (waveform input).

    Its input length and front end are :func:`coughclf.inputs.model_input`'s, the pipeline's too.
    """
    from coughclf import models

    model_name = config["model"]["name"]
    decided = model_input(config)
    input_mode = config["model"]["input_mode"]
    if input_mode == "features" and decided.frontend is not None:
        raise CoughclfError(f"{config.source}: model.input_mode = 'features' but training feeds raw audio "
                            f"to {model_name}; use input_mode = 'waveform' (log-mel inside the model)")
    options = {"input_mode": input_mode, "num_classes": num_classes, "sample_rate": sample_rate,
               **model_options(config)}
    if decided.seconds is not None:
        options["clip_seconds"] = decided.seconds
    if config["frontend"]:  # load_config checked it against the model and LogMelSpectrogram
        options["frontend"] = decided.frontend
    _, layer_settings = mixing_from_augment(config["augment"], config.source)
    if layer_settings:
        from coughclf.layers.augment import build_augmentation

        waveform_layers, spec_layers = build_augmentation(layer_settings)
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


def plan_fit(config, run_dir, cache, split, strategy):
    """The classifier's part of :func:`coughclf.fitting.fit_run`: metadata.json, model, datasets, class weights."""
    from coughclf.pipeline import class_weights

    rows = {row["id"]: row for row in cache.manifest}
    metadata = None
    if config["data"]["metadata"]:
        metadata = fit_metadata_encoding([rows[i] for i in split["train"]], config["data"]["metadata"])
        write_json(Path(run_dir) / "metadata.json", metadata)
    num_classes = len(cache.classes)
    with strategy.scope():
        model = build_model(config, num_classes, cache.sample_rate, metadata_width(metadata or []))
        compile_model(model, config, num_classes)
    seconds = input_seconds(model_input(config), model)
    train_data = make_inputs(config, cache, split["train"], mode="train", seconds=seconds, metadata=metadata)
    validation_data = (make_inputs(config, cache, split["validation"], mode="eval", seconds=seconds,
                                   metadata=metadata) if split["validation"] else None)
    weights = None
    if config["balance"]["mode"] == "class_weight":
        weights = class_weights([int(rows[i]["label_index"]) for i in split["train"]],
                                config["balance"]["formula"])
    mixing, _ = mixing_from_augment(config["augment"], config.source, config["train"]["seed"])
    if mixing.active:  # mixed targets carry their class weights as sample weights (see coughclf.mixing)
        train_data = mix_batches(train_data, mixing, sample_rate=cache.sample_rate, class_weights=weights)
        weights = None
    return FitPlan(model, train_data, validation_data, config["train"]["monitor"], monitor_mode(config),
                   class_weight=weights, summary={"classes": cache.classes})


# --- evaluation ---------------------------------------------------------------------------------

def predict(model, dataset):
    """``(ids, labels, probabilities)`` of every example of a ``make_inputs(..., with_ids=True)`` dataset."""
    ids, labels, probabilities = [], [], []
    input_names = {tensor.name.split(":")[0] for tensor in model.inputs}
    for inputs, one_hot in dataset:
        ids.append(inputs.pop("id").numpy().astype(str))
        # NumPy, not tf.Tensor: a model on the JAX backend takes arrays only
        feed = {name: np.asarray(value) for name, value in inputs.items() if name in input_names}
        probabilities.append(np.asarray(model.predict_on_batch(feed if len(feed) > 1 else feed["audio"])))
        labels.append(np.argmax(one_hot.numpy(), axis=1))
    return np.concatenate(ids), np.concatenate(labels), np.concatenate(probabilities)


def _metrics(config, labels, probabilities, classes):
    settings = config["metrics"]
    return metric_functions.classification_metrics(
        labels, probabilities, classes, positive=settings["positive_class"], specificity=settings["specificity"],
        bootstrap=settings["bootstrap"], confidence=settings["confidence"], seed=config["train"]["seed"])


def clip_metrics(config, labels, probabilities, classes, rows):
    """The metrics of [metrics] on clips, with ``"groups"``: the same within each value of every
    ``metrics.group_by`` column (``rows``: each clip's manifest row). Shared by evaluation and the
    classical baselines (:mod:`coughclf.baselines`), so both report the same numbers."""
    results = _metrics(config, labels, probabilities, classes)
    groups = {}
    for column in config["metrics"]["group_by"]:
        values = np.array([row.get(column, "") for row in rows])
        groups[column] = {str(value): _metrics(config, labels[values == value], probabilities[values == value],
                                               classes)
                          for value in sorted(set(values))}
    if groups:
        results["groups"] = groups
    return results


def _example_spectrograms(model, config, dataset, classes, count):
    """``(log_mel, caption)`` of ``count`` examples, taking the classes in turn, through the model's front end."""
    from coughclf.layers.frontend import LogMelSpectrogram

    by_class = {}
    for inputs, one_hot in dataset.take(8):
        for audio, clip_id, label in zip(inputs["audio"].numpy(), inputs["id"].numpy(),
                                         np.argmax(one_hot.numpy(), axis=1)):
            by_class.setdefault(int(label), []).append((audio, clip_id.decode()))
    picked = []
    for turn in range(count):
        for label in sorted(by_class):
            if turn < len(by_class[label]) and len(picked) < count:
                picked.append((by_class[label][turn], label))
    try:
        front_end = model.get_layer("log_mel")
        note = "model front end"
    except ValueError:  # a raw-waveform model: a default log-mel, for a person to look at only
        front_end = LogMelSpectrogram(sample_rate=config["data"]["sample_rate"], n_fft=512, hop_length=128,
                                      n_mels=64)
        note = "display only: the model reads the waveform"
    log_mel = np.asarray(front_end(np.stack([audio for (audio, _), _ in picked])))
    captions = [f"label: {classes[label]}\n{clip_id[-28:]}" for (_, clip_id), label in picked]
    return list(zip(log_mel, captions)), front_end.hop_length, note


def evaluate_run(run_dir, data=None, split="test", *, make_plots=True):
    """Evaluate the run's ``best.keras`` on ``split`` of its cache (or of ``data``, another cache); a
    ``coughclf cv`` folder's fold ensemble (:mod:`coughclf.ensemble`) on all clips of ``data``.

    Writes ``metrics.json`` and ``plots/`` in the run folder for its own test split,
    ``metrics-{split}[-{cache name}].json`` and ``plots-...`` otherwise, and the clip-level
    predictions beside them (``predictions*.npz``: ids, labels, probabilities, classes).
    Returns the results.

    Example::

        from coughclf.evaluate import evaluate
        results = evaluate("saved_models/kws_cnn-20250101-120000")
        print(results["accuracy"], results["auc_ci"])
    """
    import keras

    from coughclf.cache import open_cache

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if is_cv_folder(run_dir):  # its fold ensemble, on clips none of its folds trained on
        if data is None or split != "all":
            raise CoughclfError(f"{run_dir} is a cross-validation folder: every clip of its own data trained some "
                                "of its folds; evaluate its fold ensemble on other data with --data CACHE --split all")
        classes = ensemble_info(run_dir)["labels"]
        model = load_fold_ensemble(run_dir)
    else:
        model_path = best_model_path(run_dir)
        classes = read_json(run_dir / "training.json")["classes"] if (run_dir / "training.json").exists() else None
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    cache = open_cache(data) if data else open_data(config)
    if classes is not None and classes != cache.classes:
        raise CoughclfError(f"{cache.root} has classes {cache.classes}, the model was trained on {classes}")
    classes = cache.classes
    ids = selected_ids(run_dir, cache, split, external=data is not None)
    metadata_path = run_dir / "metadata.json"
    metadata = read_json(metadata_path) if metadata_path.exists() else None
    dataset = make_inputs(config, cache, ids, mode="eval", seconds=input_seconds(model_input(config), model),
                          metadata=metadata, with_ids=True)
    window_ids, window_labels, window_probabilities = predict(model, dataset)
    clip_ids, labels, probabilities = metric_functions.aggregate_by_clip(window_ids, window_labels,
                                                                        window_probabilities)
    rows = {row["id"]: row for row in cache.manifest}
    results = {"run": str(run_dir), "model": config["model"]["name"], "split": split, "cache": str(cache.root),
               "clips": int(len(clip_ids)),
               **clip_metrics(config, labels, probabilities, classes, [rows[clip_id] for clip_id in clip_ids])}
    if config["data"]["windows"]:
        results["window_level"] = _metrics(config, window_labels, window_probabilities, classes)

    tag = evaluation_tag(split, data)
    write_json(run_dir / f"metrics{tag}.json", results)
    with atomic_path(run_dir / f"predictions{tag}.npz") as temporary, open(temporary, "wb") as handle:
        np.savez(handle, ids=clip_ids, labels=labels, probabilities=probabilities, classes=np.array(classes))
    if make_plots:
        _plot(run_dir / f"plots{tag}", run_dir, config, model, dataset, labels, probabilities, results, classes)
    return json_ready(results)


def _plot(folder, run_dir, config, model, dataset, labels, probabilities, results, classes):
    title = f"{config['name']} ({config['model']['name']}), {results['split']} split, {results['clips']} clips"
    history = run_dir / "history.json"
    if history.exists() and read_json(history):
        plots.learning_curves(read_json(history), folder / "learning_curves.png", monitor=config["train"]["monitor"],
                              title=f"{config['name']}: learning curves")
    plots.roc_curves(labels, probabilities, classes, folder / "roc.png", title=f"ROC — {title}",
                     specificity=config["metrics"]["specificity"])
    plots.confusion_matrix(results["confusion_matrix"], classes, folder / "confusion_matrix.png",
                           title=f"Confusion matrix — {title}\naccuracy {results['accuracy']:.3f}")
    if config["metrics"]["examples"]:
        examples, hop_length, note = _example_spectrograms(model, config, dataset, classes,
                                                           config["metrics"]["examples"])
        plots.spectrograms(examples, folder / "spectrograms.png", sample_rate=config["data"]["sample_rate"],
                           hop_length=hop_length, title=f"Example log-mel spectrograms with labels ({note})")
