"""The [distill] table checked at load, before anything is read: what :func:`coughclf.config.load_config` adds
to the schema's own checks (types, choices, intervals) when ``distill.teacher`` is set.

Whether the teacher and the unlabelled audio exist is :func:`coughclf.distillation.teachers.check_teacher`'s,
when training starts: a config stays valid on a machine without them, and a finished student is evaluated,
exported and served without its teacher.
"""

from coughclf.errors import CoughclfError, unknown_key

# The keys of a pretrained teacher table that are not options of the model's builder.
TEACHER_TABLE_KEYS = ("model", "weights")


def check_distill(config, path):
    """Fail naming the key and ``path`` for a [distill] table that cannot work (the teacher is set)."""
    settings = config["distill"]
    if config["task"] == "ctc":
        raise CoughclfError(f"{path}: [distill] teaches classifiers; a speech (ctc) model's per-frame transcripts "
                            "have no teacher here (out of scope): remove [distill]")
    teacher = settings["teacher"]
    if isinstance(teacher, dict):
        _check_teacher_table(teacher, path)
    elif not teacher.strip():
        raise CoughclfError(f"{path}: distill.teacher is empty; give a run folder, a CV folder, a .keras file or "
                            '{ model = "NAME", weights = "PATH" }')
    names = settings["teacher_classes"]
    if any(not isinstance(name, str) or not name for name in names) or len(set(names)) != len(names):
        raise CoughclfError(f"{path}: distill.teacher_classes = {names!r} must be distinct class names "
                            "(the teacher's outputs, in order)")
    if any(not isinstance(source, str) or not source for source in settings["unlabelled"]):
        raise CoughclfError(f"{path}: distill.unlabelled = {settings['unlabelled']!r} must be a list of paths "
                            "(prepared caches or folders of audio)")
    if settings["unlabelled"] and config["data"]["metadata"]:
        raise CoughclfError(f"{path}: distill.unlabelled audio has no manifest metadata for the student's "
                            "metadata input (data.metadata); remove one of them")


def _check_teacher_table(teacher, path):
    """``{model, weights, builder options...}``: a registered classifier built from a published checkpoint."""
    from coughclf import models

    for key in TEACHER_TABLE_KEYS:
        if not isinstance(teacher.get(key), str) or not teacher[key]:
            raise CoughclfError(f"{path}: distill.teacher.{key} is required and must be a string: the teacher "
                                f'table is {{ model = "NAME", weights = "PATH", options of the model... }}')
    name = teacher["model"]
    if name not in models.available():
        raise CoughclfError(f"{path}: distill.teacher.model = {name!r} is not a known model; choose one of: "
                            f"{', '.join(models.available())}")
    spec = models.spec(name)
    if spec.task != "classification":
        raise CoughclfError(f"{path}: distill.teacher.model = {name!r} is a {spec.task} model; a teacher gives "
                            "class probabilities")
    if spec.pretrained is None:
        raise CoughclfError(f"{path}: distill.teacher.model = {name!r} reads no published checkpoint; give a "
                            "trained teacher as a run folder or .keras file instead")
    accepted = models.accepted_options(name)
    for option in teacher:
        if option not in TEACHER_TABLE_KEYS and option not in accepted:
            unknown_key(option, f"distill.teacher.{option}", [*TEACHER_TABLE_KEYS, *accepted], path)
