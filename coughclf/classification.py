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
from coughclf.config import model_options
from coughclf.ensemble import ensemble_info, is_cv_folder, load_fold_ensemble
from coughclf.errors import CoughclfError
from coughclf.files import atomic_path, json_ready, read_json, write_json
from coughclf.fitting import FitPlan
from coughclf.inputs import (fit_metadata_encoding, input_seconds, make_inputs, metadata_width, model_input,
                             run_data, selected_ids)
from coughclf.mixing import mix_batches, mixing_from_augment
from coughclf.optim import jit_compile, make_optimizer
from coughclf.pretrained.embedding_head import plan_embedding_fit, uses_cached_embeddings
from coughclf.runs import evaluation_tag, load_best_model, monitor_mode, run_config


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
    accepted = models.accepted_options(model_name)
    rejected = [key for key in options if key not in accepted]
    if "metadata_dim" in rejected:
        raise CoughclfError(f"{config.source}: data.metadata is set but {model_name} has no metadata input; "
                            "remove data.metadata or use resnet18/resnet34/ast")
    if "clip_seconds" in rejected:
        raise CoughclfError(f"{config.source}: {model_name} has a fixed input length; remove "
                            "data.clip_seconds / data.window_seconds")
    return models.build(model_name, weights=config["model"]["weights"], freeze=config["model"]["freeze"],
                        **{k: v for k, v in options.items() if k not in rejected})


def backbone_lr_factors(config, model):
    """``{backbone layer: optimizer.backbone_lr_factor}`` of a pretrained model; ``{}`` at factor 1."""
    factor = config["optimizer"]["backbone_lr_factor"]
    if factor == 1.0:
        return {}
    from coughclf import models
    from coughclf.models.checkpoints import layer_groups

    head = models.spec(config["model"]["name"]).pretrained.head_layers
    return {name: factor for name in layer_groups(model, head)["backbone"]}


def compile_model(model, config, num_classes, classifier=None):
    """Cross-entropy on one-hot labels; accuracy and ROC AUC (macro one-vs-rest) as metrics.

    Their names are the values train.monitor may name (``coughclf.tasks.TASKS``' monitors).
    ``classifier``: the model whose layers the optimiser's per-layer rates name, when ``model``
    trains it from outside (a distillation model holding the student); default ``model``.
    """
    import keras

    model.compile(
        optimizer=make_optimizer(config, backbone_lr_factors(config, classifier or model)),
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
        cached = uses_cached_embeddings(config, model)
        if not cached:
            compile_model(model, config, num_classes)
    seconds = input_seconds(model_input(config), model)
    weights = None
    if config["balance"]["mode"] == "class_weight":
        weights = class_weights([int(rows[i]["label_index"]) for i in split["train"]],
                                config["balance"]["formula"])
    if cached:  # a frozen backbone with an embeddings layer: the head trains on embeddings computed once
        def compile_head(head):
            with strategy.scope():
                return compile_model(head, config, num_classes)

        return plan_embedding_fit(config, cache, split, model, compile_head, seconds, weights)
    train_data = make_inputs(config, cache, split["train"], mode="train", seconds=seconds, metadata=metadata)
    validation_data = (make_inputs(config, cache, split["validation"], mode="eval", seconds=seconds,
                                   metadata=metadata) if split["validation"] else None)
    mixing, _ = mixing_from_augment(config["augment"], config.source, config["train"]["seed"])
    if mixing.active:  # mixed targets carry their class weights as sample weights (see coughclf.mixing)
        train_data = mix_batches(train_data, mixing, sample_rate=cache.sample_rate, class_weights=weights)
        weights = None
    plan = FitPlan(model, train_data, validation_data, config["train"]["monitor"], monitor_mode(config),
                   class_weight=weights, summary={"classes": cache.classes})
    if config["distill"]["teacher"] is None:
        return plan
    from coughclf.distillation.plan import distillation_plan

    plan = distillation_plan(config, plan, cache, split, strategy)  # the student trains beside its teacher
    with strategy.scope():
        compile_model(plan.model, config, num_classes, classifier=model)
    return plan


# --- evaluation ---------------------------------------------------------------------------------

def predict(model, dataset):
    """``(ids, labels, probabilities)`` of every example of a ``make_inputs(..., with_ids=True)`` dataset."""
    ids, labels, probabilities = [], [], []
    input_names = {tensor.name.split(":")[0] for tensor in model.inputs}
    for inputs, one_hot in dataset:
        ids.append(inputs.pop("id").numpy().astype(str))
        # NumPy, not the pipeline's TensorFlow tensors: a model on JAX or PyTorch takes no others.
        feed = {name: value.numpy() for name, value in inputs.items() if name in input_names}
        probabilities.append(np.asarray(model.predict_on_batch(feed if len(feed) > 1 else feed["audio"])))
        labels.append(np.argmax(one_hot.numpy(), axis=1))
    return np.concatenate(ids), np.concatenate(labels), np.concatenate(probabilities)


def _metrics(config, labels, probabilities, classes):
    settings = config["metrics"]
    return metric_functions.classification_metrics(
        labels, probabilities, classes, positive=settings["positive_class"], specificity=settings["specificity"],
        bootstrap=settings["bootstrap"], confidence=settings["confidence"], seed=config["train"]["seed"])


def clip_metrics(config, labels, probabilities, classes, rows, group_by=None):
    """The metrics of [metrics] on clips, with ``"groups"``: the same within each value of every
    ``group_by`` column (default ``metrics.group_by``; ``rows``: each clip's manifest row). Shared by
    evaluation and the classical baselines (:mod:`coughclf.baselines`), so both report the same numbers."""
    results = _metrics(config, labels, probabilities, classes)
    groups = {}
    for column in config["metrics"]["group_by"] if group_by is None else group_by:
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


def evaluate_run(run_dir, data=None, split="test", *, make_plots=True, label_map=None, group_by=None):
    """Evaluate the run's ``best.keras`` on ``split`` of its cache (or of ``data``, another cache); a
    ``coughclf cv`` folder's fold ensemble (:mod:`coughclf.ensemble`) on all clips of ``data``.

    Writes ``metrics.json`` and ``plots/`` in the run folder for its own test split,
    ``metrics-{split}[-{cache name}].json`` and ``plots-...`` otherwise, and the clip-level
    predictions beside them (``predictions*.npz``: ids, labels, probabilities, classes).
    Returns the results.

    Another cache may name its classes differently (``label_map`` ``{its name: the model's}``)
    or hold only some of the model's classes (a negatives-only cohort: the metrics are those
    of the classes present, its specificity among them). ``group_by`` (manifest columns)
    replaces [metrics].group_by: metrics per value, e.g. per patient.

    Example::

        from coughclf.evaluate import evaluate
        results = evaluate("saved_models/kws_cnn-20250101-120000")
        print(results["accuracy"], results["auc_ci"])
    """
    from coughclf.cache import open_cache

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if is_cv_folder(run_dir):  # its fold ensemble, on clips none of its folds trained on
        if data is None or split != "all":
            raise CoughclfError(f"{run_dir} is a cross-validation folder: every clip of its own data trained some "
                                "of its folds; evaluate its fold ensemble on other data with --data CACHE --split all")
        trained = ensemble_info(run_dir)["labels"]
        model = load_fold_ensemble(run_dir)
    else:
        trained = None
        model = load_best_model(run_dir)  # before any data is opened: a damaged file fails at once
    cache = open_cache(data) if data else run_data(config, run_dir)
    ids = selected_ids(run_dir, cache, split, external=data is not None)
    summary = run_dir / "training.json"
    if trained is None:
        trained = (read_json(summary)["classes"] if summary.exists()
                   else (run_data(config, run_dir) if data else cache).classes)
    classes, model_index = _model_labels(run_dir, trained, cache, ids, label_map)
    rows = {row["id"]: row for row in cache.manifest}
    group_by = config["metrics"]["group_by"] if group_by is None else list(group_by)
    missing_columns = [column for column in group_by if column not in cache.manifest[0]]
    if missing_columns:
        raise CoughclfError(f"group by {missing_columns}: not columns of {cache.root}/manifest.csv; available: "
                            f"{', '.join(column for column in cache.manifest[0] if column not in ('path', 'sha1'))}")
    metadata_path = run_dir / "metadata.json"
    metadata = read_json(metadata_path) if metadata_path.exists() else None
    dataset = make_inputs(config, cache, ids, mode="eval", seconds=input_seconds(model_input(config), model),
                          metadata=metadata, with_ids=True)
    window_ids, window_labels, window_probabilities = predict(model, dataset)
    window_labels = model_index[window_labels]
    clip_ids, labels, probabilities = metric_functions.aggregate_by_clip(window_ids, window_labels,
                                                                        window_probabilities)
    results = {"run": str(run_dir), "task": "classification", "model": config["model"]["name"], "split": split,
               "cache": str(cache.root), "clips": int(len(clip_ids)),
               **clip_metrics(config, labels, probabilities, classes, [rows[clip_id] for clip_id in clip_ids],
                              group_by)}
    if label_map:
        results["label_map"] = dict(label_map)
    if config["data"]["windows"]:
        results["window_level"] = _metrics(config, window_labels, window_probabilities, classes)

    tag = evaluation_tag(split, data)
    write_json(run_dir / f"metrics{tag}.json", results)
    with atomic_path(run_dir / f"predictions{tag}.npz") as temporary, open(temporary, "wb") as handle:
        np.savez(handle, ids=clip_ids, labels=labels, probabilities=probabilities, classes=np.array(classes))
    if make_plots:
        _plot(run_dir / f"plots{tag}", run_dir, config, model, dataset, labels, probabilities, results, classes,
              [(label_map or {}).get(name, name) for name in cache.classes])
    return json_ready(results)


def _model_labels(run_dir, trained, cache, ids, label_map):
    """``(the model's classes, array: cache label index -> model class index)`` for clips ``ids``.

    ``trained`` are the model's classes; ``label_map`` renames the cache's classes first; a class
    of the clips that the model does not know is an error that says how to map it.
    """
    label_map = dict(label_map or {})
    for names, owner in ((set(label_map) - set(cache.classes), f"{cache.root} (its classes: {cache.classes})"),
                         (set(label_map.values()) - set(trained), f"the model (its classes: {trained})")):
        if names:
            raise CoughclfError(f"--map-labels names {sorted(names)}, not classes of {owner}")
    names = [label_map.get(name, name) for name in cache.classes]
    chosen = set(ids)
    present = {names[int(row["label_index"])] for row in cache.manifest if row["id"] in chosen}
    unknown = sorted(present - set(trained))
    if unknown:
        raise CoughclfError(f"{cache.root} has clips of {unknown}, classes the model of {run_dir} does not know (its "
                            f"classes: {trained}); map them onto the model's with --map-labels, e.g. "
                            f"--map-labels {unknown[0]}={trained[0]}")
    return list(trained), np.array([trained.index(name) if name in trained else -1 for name in names])


def summary_lines(results):
    """An evaluation's results as readable lines: the headline metrics with their intervals, per group."""
    lines = [f"{results['model']} on {results['clips']} {results['split']} clips of {results['cache']}"]
    for name in ("accuracy", "auc", "balanced_accuracy", "macro_f1"):
        interval = results.get(f"{name}_ci")
        extra = f"  (95% CI {interval[0]:.3f}-{interval[1]:.3f})" if interval and None not in interval else ""
        value = results[name]
        lines.append(f"  {name:<18} {'n/a' if value is None else f'{value:.4f}'}{extra}")
    if len(results["classes_present"]) < len(results["class_names"]):
        lines.append(f"  classes present: {', '.join(results['classes_present'])} (of "
                     f"{', '.join(results['class_names'])})")
    for name in ("sensitivity", "specificity"):
        if name in results:
            lines.append(f"  {name:<18} {'n/a' if results[name] is None else f'{results[name]:.4f}'}")
    if "sensitivity_at_specificity" in results:
        point = results["sensitivity_at_specificity"]
        sensitivity = "n/a" if point["sensitivity"] is None else f"{point['sensitivity']:.3f}"
        lines.append(f"  sensitivity {sensitivity} at specificity {point['specificity']:.2f}")
    if "window_level" in results:
        window = results["window_level"]
        auc = "n/a" if window["auc"] is None else f"{window['auc']:.4f}"
        lines.append(f"  per window: accuracy {window['accuracy']:.4f}, AUC {auc}")
    for column, groups in results.get("groups", {}).items():
        for value, group in groups.items():
            auc = "n/a" if group["auc"] is None else f"{group['auc']:.4f}"
            lines.append(f"  {column}={value}: n {group['n']}, accuracy {group['accuracy']:.4f}, AUC {auc}")
    return lines


def _plot(folder, run_dir, config, model, dataset, labels, probabilities, results, classes, data_classes):
    """The evaluation's plots; ``data_classes`` names the dataset's label indices (the examples' captions)."""
    title = (f"{config['name']} ({config['model']['name']}) on {Path(results['cache']).name}, {results['split']}, "
             f"{results['clips']} clips")
    history = run_dir / "history.json"
    if history.exists() and read_json(history):
        plots.learning_curves(read_json(history), folder / "learning_curves.png", monitor=config["train"]["monitor"],
                              title=f"{config['name']}: learning curves")
    plots.roc_curves(labels, probabilities, classes, folder / "roc.png", title=f"ROC — {title}",
                     specificity=config["metrics"]["specificity"])
    plots.confusion_matrix(results["confusion_matrix"], classes, folder / "confusion_matrix.png",
                           title=f"Confusion matrix — {title}\naccuracy {results['accuracy']:.3f}")
    if config["metrics"]["examples"]:
        examples, hop_length, note = _example_spectrograms(model, config, dataset, data_classes,
                                                           config["metrics"]["examples"])
        plots.spectrograms(examples, folder / "spectrograms.png", sample_rate=config["data"]["sample_rate"],
                           hop_length=hop_length, title=f"Example log-mel spectrograms with labels ({note})")
