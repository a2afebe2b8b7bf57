"""``coughclf evaluate``: the metrics and plots of a run's best model on one split.

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
from coughclf.errors import CoughclfError
from coughclf.train import input_seconds, json_ready, make_inputs, open_data, read_json, write_json

SPLITS = ("train", "validation", "test", "all")


def predict(model, dataset):
    """``(ids, labels, probabilities)`` of every example of a ``make_inputs(..., with_ids=True)`` dataset."""
    ids, labels, probabilities = [], [], []
    input_names = {tensor.name.split(":")[0] for tensor in model.inputs}
    for inputs, one_hot in dataset:
        ids.append(inputs.pop("id").numpy().astype(str))
        feed = {name: value for name, value in inputs.items() if name in input_names}
        probabilities.append(np.asarray(model.predict_on_batch(feed if len(feed) > 1 else feed["audio"])))
        labels.append(np.argmax(one_hot.numpy(), axis=1))
    return np.concatenate(ids), np.concatenate(labels), np.concatenate(probabilities)


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


def _metrics(config, labels, probabilities, classes):
    settings = config["metrics"]
    return metric_functions.classification_metrics(
        labels, probabilities, classes, positive=settings["positive_class"], specificity=settings["specificity"],
        bootstrap=settings["bootstrap"], confidence=settings["confidence"], seed=config["train"]["seed"])


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


def evaluate(run_dir, data=None, split="test", *, make_plots=True):
    """Evaluate the run's ``best.keras`` on ``split`` of its cache (or of ``data``, another cache).

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
    from coughclf.config import load_config

    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").exists():
        raise CoughclfError(f"{run_dir} is not a run folder (no config.toml); pass a folder that "
                            "'coughclf train' wrote")
    config = load_config(run_dir / "config.toml")
    if config["task"] == "ctc":
        from coughclf.speech import evaluate_ctc

        return evaluate_ctc(run_dir, data=data, split=split)
    if not (run_dir / "best.keras").exists():
        raise CoughclfError(f"{run_dir} has no best.keras: its training has not finished a epoch; "
                            "resume it with 'coughclf train CONFIG --run-dir RUN'")
    cache = open_cache(data) if data else open_data(config)
    classes = read_json(run_dir / "training.json")["classes"] if (run_dir / "training.json").exists() else None
    if classes is not None and classes != cache.classes:
        raise CoughclfError(f"{cache.root} has classes {cache.classes}, the model was trained on {classes}")
    classes = cache.classes
    ids = selected_ids(run_dir, cache, split, external=data is not None)
    metadata_path = run_dir / "metadata.json"
    metadata = read_json(metadata_path) if metadata_path.exists() else None
    model = keras.saving.load_model(run_dir / "best.keras", compile=False, safe_mode=True)
    dataset = make_inputs(config, cache, ids, mode="eval", seconds=input_seconds(model, cache.sample_rate),
                          metadata=metadata, with_ids=True)
    window_ids, window_labels, window_probabilities = predict(model, dataset)
    clip_ids, labels, probabilities = metric_functions.aggregate_by_clip(window_ids, window_labels,
                                                                        window_probabilities)
    results = {"run": str(run_dir), "model": config["model"]["name"], "split": split, "cache": str(cache.root),
               "clips": int(len(clip_ids)), **_metrics(config, labels, probabilities, classes)}
    if config["data"]["windows"]:
        results["window_level"] = _metrics(config, window_labels, window_probabilities, classes)
    rows = {row["id"]: row for row in cache.manifest}
    groups = {}
    for column in config["metrics"]["group_by"]:
        values = np.array([rows[clip_id].get(column, "") for clip_id in clip_ids])
        groups[column] = {str(value): _metrics(config, labels[values == value], probabilities[values == value],
                                               classes)
                          for value in sorted(set(values))}
    if groups:
        results["groups"] = groups

    default = split == "test" and data is None
    tag = "" if default else f"-{split}" + (f"-{Path(data).name}" if data else "")
    write_json(run_dir / f"metrics{tag}.json", results)
    predictions = run_dir / f"predictions{tag}.npz"
    with open(predictions.with_name(predictions.name + ".tmp"), "wb") as handle:
        np.savez(handle, ids=clip_ids, labels=labels, probabilities=probabilities, classes=np.array(classes))
    predictions.with_name(predictions.name + ".tmp").replace(predictions)
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
