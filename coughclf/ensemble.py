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

Different models cross-validated on the same folds (say the pretrained YAMNet and a
from-scratch resnet18) form an ensemble fold by fold (``coughclf evaluate CV_A CV_B``,
:func:`coughclf.model_ensemble.evaluate_model_ensemble`): fold ``i``'s test clips are scored by
:func:`combine_models` of every member's ``fold-i`` model, so only by models that held
them out. Members may hear different lengths: one trained on windows of the clip
(``data.windows``) gets them from :class:`coughclf.layers.windows.ClipWindow` layers
inside the graph, at the places its evaluation cuts them, and gives their mean. The
result is written as a CV folder whose ``fold-i/best.keras`` is fold ``i``'s ensemble,
so everything above takes it as one model.

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
MODEL_ENSEMBLE_NAME = "model_ensemble"
ENSEMBLE_FILE = "ensemble.json"  # the members of an ensemble of different models' CV folders


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
    """The models inside an ensemble (:func:`average_models`, :func:`combine_models`, or either of
    ensembles), in order: a model whose every layer with weights is a whole model; ``[]`` for any
    other model. Recognised by structure, not name: :func:`average_models` renames what it averages."""
    import keras

    weighted = [layer for layer in model.layers if layer.weights]
    if not weighted or not all(isinstance(layer, keras.Model) for layer in weighted):
        return []
    return weighted


# --- ensembles of different models trained on the same folds ------------------------------------

def _member(cv_dir):
    """:func:`ensemble_info` of one CV folder, with how its models hear a clip: ``clip_samples`` (its
    clip), ``window_samples`` (what its model takes) and ``window_starts`` (its windows' first samples in
    its clip, or None when its model takes the whole clip)."""
    from coughclf.layers.windows import window_starts

    info = ensemble_info(cv_dir)
    data = info["config"]["data"]
    info["cv_dir"] = str(cv_dir)
    info["window_samples"] = info["clip_samples"]
    info["window_starts"] = None
    if data["windows"]:
        if data["clip_seconds"] is None:
            raise CoughclfError(f"{cv_dir}: its models take windows of whole clips of any length (data.windows "
                                "without data.clip_seconds); an ensemble needs one clip length")
        info["clip_samples"] = int(round(data["clip_seconds"] * info["sample_rate"]))
        info["window_starts"] = window_starts(info["clip_samples"], info["window_samples"], data["windows"])
    return info


def _test_folds(cv_dir):
    return [sorted(fold["test"]) for fold in read_json(Path(cv_dir) / FOLDS_FILE)]


def check_members(cv_dirs):
    """The :func:`_member` of every CV folder, checked to form one ensemble: two at least, the same
    classes and sample rate, and the same test clips in every fold (each fold's test clips are then
    scored only by models that never trained on them).

    The ensemble hears the longest member's clip; each member's ``starts`` say where in it the
    member's model inputs begin (None: the whole clip). A member with a shorter clip hears its
    centre, as its own evaluation crops a longer recording (to one sample where the two crops round
    differently)."""
    if len(cv_dirs) < 2:
        raise CoughclfError("an ensemble of models needs two CV folders at least (one CV folder is already its "
                            "fold ensemble)")
    members = [_member(cv_dir) for cv_dir in cv_dirs]
    first = members[0]
    for member in members[1:]:
        for key, what in (("labels", "classes"), ("sample_rate", "sample rate")):
            if member[key] != first[key]:
                raise CoughclfError(f"{member['cv_dir']} and {first['cv_dir']} differ in {what} ({member[key]} "
                                    f"against {first[key]}); an ensemble's members hear the same clips")
        if _test_folds(member["cv_dir"]) != _test_folds(first["cv_dir"]):
            raise CoughclfError(f"{member['cv_dir']} and {first['cv_dir']} were cross-validated on different folds; "
                                "an ensemble scores each test fold with the models that held it out, so its "
                                "members need the same folds (the same data, split.method, k and seed)")
    clip = ensemble_clip(members)
    for member in members:
        offset = (clip - member["clip_samples"]) // 2
        starts = [offset + start for start in member["window_starts"] or [0]]
        member["starts"] = None if member["window_samples"] == clip else starts
    return members


def ensemble_clip(members):
    """The samples of the clip an ensemble of :func:`_member` s hears: the longest member's."""
    return max(member["clip_samples"] for member in members)


def combine_models(members, clip_samples, name=MODEL_ENSEMBLE_NAME):
    """One functional model of ``members`` (``(model, starts)`` pairs) taking a clip of ``clip_samples``:
    a member with ``starts`` hears its windows (:class:`coughclf.layers.windows.ClipWindow`) and gives
    the mean of their probabilities, as its evaluation does; the members' probabilities are averaged.
    The models are renamed ``member_{i}``."""
    import keras

    from coughclf.layers.windows import ClipWindow

    clip = keras.Input(shape=(clip_samples,), name="audio")
    outputs = []
    for index, (model, starts) in enumerate(members):
        if len(model.inputs) != 1:
            raise CoughclfError(f"{model.name} has a metadata input; ensembles take waveform-only models")
        model.name = f"member_{index}"
        if starts is None and model.inputs[0].shape[1] != clip_samples:
            raise CoughclfError(f"member {index} takes {model.inputs[0].shape[1]} samples, not the clip's "
                                f"{clip_samples}, and no windows; an ensemble's members hear the same clip")
        if starts is None:
            outputs.append(model(clip))
            continue
        length = model.inputs[0].shape[1]
        heard = [model(ClipWindow(start, length, name=f"member_{index}_window_{window}")(clip))
                 for window, start in enumerate(starts)]
        outputs.append(heard[0] if len(heard) == 1 else keras.layers.Average(name=f"member_{index}_windows")(heard))
    return keras.Model(clip, keras.layers.Average(name="mean_probabilities")(outputs), name=name)
