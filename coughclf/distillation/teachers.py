"""Which teacher a student learns from: read from its files, checked against the student's data and split.

``distill.teacher`` is one of

* a **run folder** (``coughclf train``): its ``best.keras``; its classes from ``training.json``, what it
  trained on from ``split.json``;
* a **CV folder** (``coughclf cv``): its fold models; its classes from the folds' ``training.json``, every
  fold's parts from ``folds.json``;
* a **.keras file**: a run folder's (its classes and split are then read beside it) or any other, whose
  classes ``distill.teacher_classes`` names;
* a **table** ``{ model = "NAME", weights = "PATH", options... }``: the registered model built from a
  published checkpoint through :func:`coughclf.models.build`, with the head it was fine-tuned with (the
  checkpoint's, or the one the builder's options give); its classes from ``distill.teacher_classes``.

**Classes** are matched by name: the teacher's outputs are taken in the data's class order, and a
teacher that knows more classes than the data holds gives its distribution over the data's classes
(the softmax of the chosen logits: the teacher's probabilities given that the clip is one of them). A
data class the teacher does not know is an error, raised before training.

**No leak** (:func:`teacher_members`): a teacher never scores a student whose test clips it trained on.
A CV-folder teacher gives each student split the fold model that held out exactly the same test clips
(each fold of a ``coughclf cv`` student learns from the same fold of the teacher); when no fold of the
teacher ever saw one of the student's test clips (the teacher trained on other data), the whole fold
ensemble teaches. Any other overlap (fold definitions that differ) is refused, as is a run-folder
teacher that trained on one of the student's test clips. A bare ``.keras`` file or a published
checkpoint records nothing of what it trained on and is trusted on that point.
"""

from pathlib import Path
from typing import NamedTuple

from coughclf.errors import CoughclfError
from coughclf.files import read_json

KINDS = ("run", "cv", "file", "pretrained")


class TeacherSource(NamedTuple):
    """What the files say about ``distill.teacher`` (nothing is loaded)."""

    kind: str            # one of KINDS
    where: str           # the folder, file or checkpoint, as the config gives it
    classes: list        # its outputs' class names, in order
    runs: list           # cv: the fold run folders in fold order; run: [the folder]; else []
    parts: list          # what each run trained on: [{"train", "validation", "test"}] per run; [] if unknown


def describe_teacher(config):
    """The :class:`TeacherSource` of ``config``'s teacher; an error naming ``distill.teacher`` and the fix
    when it is missing, unfinished, of another sample rate or of unknown classes."""
    from coughclf.ensemble import ensemble_info, is_cv_folder

    teacher, source = config["distill"]["teacher"], config.source
    named = config["distill"]["teacher_classes"]
    if isinstance(teacher, dict):
        from coughclf import models

        if not Path(teacher["weights"]).exists():
            raise CoughclfError(f"{source}: distill.teacher.weights = {teacher['weights']!r} does not exist; "
                                "download the checkpoint and give its path")
        _check_sample_rate(teacher.get("sample_rate", models.spec(teacher["model"]).defaults.get("sample_rate", 16000)),
                           config)
        return TeacherSource("pretrained", teacher["weights"], _classes(None, named, source), [], [])
    path = Path(teacher)
    if is_cv_folder(path):
        info = ensemble_info(path)  # every fold finished, one set of classes
        _check_sample_rate(info["sample_rate"], config)
        return TeacherSource("cv", teacher, _classes(info["labels"], named, source), info["runs"],
                             read_json(path / "folds.json"))
    if path.is_dir():
        from coughclf.runs import best_model_path, run_config

        best_model_path(path)  # trained at least one epoch
        _check_sample_rate(run_config(path)["data"]["sample_rate"], config)
        return TeacherSource("run", teacher, _classes(_recorded_classes(path), named, source), [str(path)],
                             _recorded_parts(path))
    if path.is_file() and path.suffix == ".keras":
        run = path.parent
        beside = (run / "config.toml").exists()
        return TeacherSource("file", teacher, _classes(_recorded_classes(run) if beside else None, named, source),
                             [], _recorded_parts(run) if beside else [])
    raise CoughclfError(f"{source}: distill.teacher = {teacher!r} is not a run folder, a CV folder or a .keras "
                        "file (it does not exist, or is none of these); train the teacher first or fix the path")


def _recorded_classes(run):
    training = Path(run) / "training.json"
    return read_json(training)["classes"] if training.exists() else None


def _recorded_parts(run):
    split = Path(run) / "split.json"
    return [read_json(split)] if split.exists() else []


def _classes(recorded, named, source):
    if recorded and named and list(named) != list(recorded):
        raise CoughclfError(f"{source}: distill.teacher_classes = {list(named)} but the teacher records its classes "
                            f"as {list(recorded)}; remove distill.teacher_classes")
    classes = recorded or named
    if not classes:
        raise CoughclfError(f"{source}: the teacher records no class names; list its outputs in order as "
                            'distill.teacher_classes = ["...", ...]')
    return list(classes)


def _check_sample_rate(rate, config):
    if rate != config["data"]["sample_rate"]:
        raise CoughclfError(f"{config.source}: the teacher {config['distill']['teacher']} hears {rate} Hz audio but "
                            f"data.sample_rate = {config['data']['sample_rate']}; use a teacher of the same rate")


def class_positions(teacher_classes, data_classes, source):
    """For each of the data's classes, the index of the teacher's output of the same name."""
    missing = [name for name in data_classes if name not in teacher_classes]
    if missing:
        raise CoughclfError(f"{source}: the teacher knows nothing of the data's classes {missing} (it knows "
                            f"{list(teacher_classes)}); give a teacher trained on these classes, or name its "
                            "outputs with distill.teacher_classes")
    return [list(teacher_classes).index(name) for name in data_classes]


def teacher_members(config, teacher, split):
    """The fold models (run folders) or file that teach the student trained on ``split``: see the module
    docstring. ``[]`` for a published checkpoint, which is built instead."""
    test = set(split["test"])
    seen = [set(part["train"]) | set(part["validation"]) for part in teacher.parts]
    if teacher.kind == "cv":
        same = [index for index, part in enumerate(teacher.parts) if set(part["test"]) == test]
        if same:
            return [teacher.runs[same[0]]]
        if not any(clips & test for clips in seen):
            return list(teacher.runs)
        raise CoughclfError(f"{config.source}: no fold of the teacher {teacher.where} held out exactly this "
                            f"student's {len(test)} test clips, and its folds trained on some of them: the fold "
                            "definitions differ. Cross-validate the student with the teacher's split settings "
                            "(split.method, k, seed, group_by, the same data) so that each fold learns from the "
                            "teacher's model of the same fold")
    leaked = sorted(set().union(*seen) & test) if seen else []
    if leaked:
        raise CoughclfError(f"{config.source}: the teacher {teacher.where} trained on {len(leaked)} of this student's "
                            f"test clips (e.g. {leaked[0]!r}); a teacher must not have seen the test part: use a "
                            "teacher trained without them (a CV folder teaches each fold its own model)")
    if teacher.kind == "run":
        return list(teacher.runs)
    return [teacher.where] if teacher.kind == "file" else []


def data_classes(config):
    """The classes of the data ``config`` trains on, without preparing it: its complete cache's, else the
    labels its loader lists (prepare sorts them the same way); None when neither can be read yet."""
    data = config["data"]
    if data["cache"] and (Path(data["cache"]) / "manifest.csv").exists():
        from coughclf.cache import open_cache

        return open_cache(data["cache"]).classes
    if data["data_dir"] and Path(data["data_dir"]).is_dir():
        from coughclf.inputs import listed_clips

        return sorted({clip.label for clip in listed_clips(config) if clip.label is not None})
    return None


def check_teacher(config, splits=()):
    """Before a run folder or the data exist: the teacher readable, its classes covering the data's, the
    unlabelled audio present; with ``splits`` (a CV student's folds), a teacher for each of them.
    Returns the :class:`TeacherSource`."""
    teacher = describe_teacher(config)
    classes = data_classes(config)
    if classes is not None:
        class_positions(teacher.classes, classes, config.source)
    for split in splits:
        teacher_members(config, teacher, split)
    for entry in config["distill"]["unlabelled"]:
        if not Path(entry).is_dir():
            raise CoughclfError(f"{config.source}: distill.unlabelled names {entry!r}, which is not a folder; give "
                                "a prepared cache or a folder of audio files")
    return teacher


def load_teacher_models(config, teacher, members):
    """The teacher's Keras models (frozen): each member's ``best.keras`` (or the file), or the published
    checkpoint built through :func:`coughclf.models.build`."""
    from coughclf import models
    from coughclf.model_files import load_model_file

    if teacher.kind == "pretrained":  # built to hear the waveform, its front end inside
        options = {"input_mode": "waveform", **{key: value for key, value in config["distill"]["teacher"].items()
                                                if key not in ("model", "weights")}}
        loaded = [models.build(config["distill"]["teacher"]["model"], weights=teacher.where, **options)]
    else:
        remedy = f"train the teacher again, or give another distill.teacher in {config.source}"
        loaded = [load_model_file(member if str(member).endswith(".keras") else Path(member) / "best.keras",
                                  remedy=remedy) for member in members]
    for model in loaded:
        if len(model.inputs) != 1 or len(model.inputs[0].shape) != 2:
            raise CoughclfError(f"{config.source}: the teacher {teacher.where} takes {len(model.inputs)} input(s) of "
                                f"shape {[tuple(tensor.shape) for tensor in model.inputs]}; a teacher hears the "
                                "waveform [batch, samples] alone (no metadata input, no precomputed features)")
        model.trainable = False
    return loaded
