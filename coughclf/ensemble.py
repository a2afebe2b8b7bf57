"""Fold ensembles: a ``coughclf cv`` folder as one model, the average of its fold models' probabilities.

Cross-validation trains k models, each on a different (k − 1)/k of the data; averaging
their class probabilities is a better model than any one of them, at no training cost.
:func:`load_fold_ensemble` builds it as a plain Keras functional model: one shared
waveform input, every fold's ``best.keras`` as a nested model (renamed ``fold_0`` …
``fold_{k−1}``) and ``keras.layers.Average`` over their outputs — no ``Lambda``, so it
saves to ``.keras`` and loads with ``safe_mode=True`` like any run's model.

:func:`ensemble_info` gives what ``predict``, ``evaluate --data`` and ``export`` need
besides the model: the class labels, sample rate and clip length (checked to agree
across folds), the fold folders and the config. ``coughclf.export`` averages the folds'
export builds (:func:`ensemble_members`), so that a fold ensemble converts to **one**
TFLite file with builtin ops only (k networks behind one input, one sidecar JSON with
the labels); its size and latency are k times one fold's. ``predict``, ``export`` and
``evaluate --data CACHE --split all`` take a CV folder wherever they take a run folder.

A fold counts once its run has a ``best.keras``; a CV folder with an unfinished fold is
refused (finish it with the same ``coughclf cv`` command). Models with a metadata input
are refused too: each fold standardises its metadata with its own training statistics
(``fold-i/metadata.json``), so the folds do not share one metadata input.

Example::

    from coughclf.ensemble import ensemble_info, load_fold_ensemble
    model = load_fold_ensemble("saved_models/esc10-cv-20261126-090000")
    info = ensemble_info("saved_models/esc10-cv-20261126-090000")
    print(info["labels"], info["clip_seconds"])
"""

import json
from pathlib import Path

from coughclf.errors import CoughclfError
from coughclf.files import read_json

FOLDS_FILE = "folds.json"
ENSEMBLE_NAME = "fold_ensemble"


def is_cv_folder(path):
    """True for a folder ``coughclf cv`` wrote (its ``folds.json`` and ``config.toml``)."""
    path = Path(path)
    return path.is_dir() and (path / FOLDS_FILE).exists() and (path / "config.toml").exists()


def fold_runs(cv_dir):
    """The fold run folders of ``cv_dir`` in fold order; every one must have finished (``best.keras``)."""
    cv_dir = Path(cv_dir)
    if not is_cv_folder(cv_dir):
        raise CoughclfError(f"{cv_dir} is not a cross-validation folder (no {FOLDS_FILE} and config.toml); "
                            "give a folder that 'coughclf cv' wrote")
    count = len(read_json(cv_dir / FOLDS_FILE))
    runs = [cv_dir / f"fold-{index}" for index in range(count)]
    missing = [run.name for run in runs if not (run / "best.keras").exists()]
    if missing:
        raise CoughclfError(f"{cv_dir}: {', '.join(missing)} of {count} folds have no best.keras yet; finish "
                            f"them with 'coughclf cv {cv_dir / 'config.toml'} --run-dir {cv_dir}'")
    return runs


def _fold_classes(run):
    training = run / "training.json"
    return read_json(training)["classes"] if training.exists() else None


def ensemble_info(cv_dir):
    """``{"labels", "sample_rate", "clip_samples", "clip_seconds", "folds", "runs", "config", "model"}``
    of a CV folder; the folds must agree on their classes."""
    from coughclf.config import load_config

    cv_dir = Path(cv_dir)
    runs = fold_runs(cv_dir)
    config = load_config(cv_dir / "config.toml")
    if config["task"] == "ctc":
        raise CoughclfError(f"{cv_dir}: fold ensembles average class probabilities; a speech (ctc) CV "
                            "folder has none (use one fold's run folder)")
    classes = [_fold_classes(run) for run in runs]
    known = [labels for labels in classes if labels is not None]
    if any(labels != known[0] for labels in known):
        raise CoughclfError(f"{cv_dir}: the folds were trained on different classes "
                            f"({', '.join(f'{run.name}: {labels}' for run, labels in zip(runs, classes))})")
    return {"labels": known[0] if known else None, "sample_rate": config["data"]["sample_rate"],
            "folds": len(runs), "runs": [str(run) for run in runs], "config": config,
            "model": config["model"]["name"], **_clip_length(runs, config["data"]["sample_rate"])}


def _clip_length(runs, sample_rate):
    """The one waveform input length of the fold models, read from the model config inside each
    ``best.keras`` (a zip archive; nothing is built)."""
    import zipfile

    lengths = set()
    for run in runs:
        with zipfile.ZipFile(run / "best.keras") as archive:
            model_config = json.loads(archive.read("config.json"))["config"]
        inputs = model_config["input_layers"]  # ["audio", 0, 0], or a list of those for several inputs
        first_input = inputs[0] if isinstance(inputs[0], str) else inputs[0][0]
        layer = next(layer for layer in model_config["layers"] if layer["name"] == first_input)
        lengths.add(layer["config"]["batch_shape"][1])
    if len(lengths) != 1 or None in lengths:
        raise CoughclfError(f"the fold models take inputs of different or variable lengths ({sorted(lengths, key=str)}); "
                            "an ensemble needs one fixed clip length")
    samples = lengths.pop()
    return {"clip_samples": samples, "clip_seconds": samples / sample_rate}


def average_models(models, name=ENSEMBLE_NAME):
    """One functional model: ``models`` (same single input shape, same classes) behind one input,
    their outputs averaged by ``keras.layers.Average``. The models are renamed ``fold_{i}``."""
    import keras

    if not models:
        raise CoughclfError("an ensemble needs at least one model")
    shapes = {tuple(model.inputs[0].shape[1:]) for model in models}
    if any(len(model.inputs) != 1 for model in models):
        raise CoughclfError("fold ensembles take models with one (waveform) input; these have a metadata input, "
                            "which each fold standardises with its own training statistics")
    outputs = {tuple(model.outputs[0].shape[1:]) for model in models}
    if len(shapes) != 1 or len(outputs) != 1:
        raise CoughclfError(f"the fold models differ in input {sorted(shapes)} or output {sorted(outputs)} shape; "
                            "an ensemble needs one shape of each")
    for index, model in enumerate(models):
        model.name = f"fold_{index}"
    inputs = keras.Input(shape=shapes.pop(), name="audio")
    if len(models) == 1:
        return keras.Model(inputs, models[0](inputs), name=name)
    averaged = keras.layers.Average(name="mean_probabilities")([model(inputs) for model in models])
    return keras.Model(inputs, averaged, name=name)


def load_fold_ensemble(cv_dir):
    """The fold ensemble of a CV folder (see the module docstring); its folds are checked first
    (:func:`ensemble_info`: finished, a classifier, the same classes and clip length)."""
    from coughclf.model_files import load_model_file

    runs = [Path(run) for run in ensemble_info(cv_dir)["runs"]]
    again = f"'coughclf cv {Path(cv_dir) / 'config.toml'} --run-dir {cv_dir}'"
    return average_models([load_model_file(run / "best.keras", remedy=f"delete {run} and train it again with {again}")
                           for run in runs])


def ensemble_members(model):
    """The fold models inside an :func:`average_models` ensemble, in fold order; ``[]`` for any other model."""
    import keras

    if model.name != ENSEMBLE_NAME:
        return []
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
