"""Experiment configs: one TOML file per experiment, a schema with defaults, ``--set`` overrides.

A config has these tables (every key optional unless marked required; defaults in
:data:`SCHEMA`)::

    name = "cough_crnn"            # run folders: saved_models/{name}-{timestamp}
    task = "classification"        # or "ctc"; defaults to the model's task

    [data]      dataset (required), data_dir, cache, options {loader options}, sample_rate,
                clip_seconds, random_crops (training clips cut or placed at random offsets;
                false: centred as in evaluation), windows, window_seconds, random_windows (training
                windows start anywhere in the clip), shuffle_buffer, metadata (manifest
                columns fed to a model's metadata input, e.g. ["meta_age", "meta_gender"]), prepare
                {trim_silence, segment, drop_conflicts, shard_size, max_file_seconds: options of
                coughclf.prepare},
                extra_train (a list of {dataset, data_dir, options, labels}: clips of other corpora
                that always train, see coughclf.datasets.extra)
    [split]     method (random|official|fold|kfold), val, test, k, seed, stratify, fold,
                train_folds, val_folds, test_folds, group_by (group: a speaker/patient never on two
                sides | none: split clips)
    [model]     name (required), input_mode, weights (a published checkpoint: coughclf.models.build's
                weights=, its head replaced for the data's classes), freeze (none|backbone: train the
                head only), then any option of the model's builder
    [frontend]  LogMelSpectrogram options overriding the model's defaults (models with a log-mel
                front end only); "none" stands for None (TOML has no null), e.g. normalize = "none"
    [augment]   layers of coughclf.layers.augment and their options (build_augmentation), and batch
                mixing of training batches: mixup / between_class, label_smoothing (coughclf.mixing)
    [balance]   mode (none|oversample|undersample|class_weight), target, max_repeats, formula, within
                (a manifest column, e.g. "meta_source": resample the (value, class) cells instead of the
                classes, so that the column tells nothing about the label in training)
    [optimizer] name (adam|adamw|sgd|rmsprop), lr, weight_decay, momentum, clipnorm,
                schedule (constant|cosine|exponential|plateau), decay_rate, min_lr, warmup_epochs
                (linear ramp to lr over the first epochs, then the schedule over the rest), ema
                (momentum of an exponential moving average of the weights, 0 = off; checkpoints,
                validation and the saved model use the average), backbone_lr_factor (with
                model.weights: the pretrained backbone learns at lr x this, the head at lr)
    [train]     epochs, batch_size, patience (0: no early stopping), monitor, mode, seed,
                steps_per_epoch, jit_compile (auto: XLA on accelerators only | on | off)
    [metrics]   group_by, bootstrap, confidence, specificity, positive_class, examples
    [tune]      the search of coughclf.tune: tuner, objective, max_trials, cv, ..., space
    [ctc]       CTC training and decoding (coughclf.speech): numbers_as_words, decoder, beam_width,
                lexicon, examples, bucket_boundaries, word_crops
    [distill]   knowledge distillation (coughclf.distillation): teacher, teacher_classes, teacher_input,
                temperature, alpha, unlabelled, unlabelled_ratio

Every table is checked here, at load time, the same way: the tables of SCHEMA key by key, [model]
against its builder's parameters, [frontend] against LogMelSpectrogram's, [augment] against
the augmentation layers'.

Relative paths are relative to the working directory. ``load_config`` checks keys,
types, choices and the model and dataset names, so a bad config fails before any
training starts, with a message naming the key and the file; ``check_data`` checks
that the data can be found.
"""

import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from coughclf.errors import CoughclfError, unknown_key, unknown_value
from coughclf.overrides import parse_value, split_assignment
from coughclf.tasks import TASKS

REQUIRED = object()
# Tables whose keys are the parameters of a component, checked against it by _validate_references:
# [frontend] against LogMelSpectrogram's, [augment] against the augmentation layers'.
COMPONENT = "component"
# The CTC decoders (coughclf.ctc.decode_batch), named here so that a config is checked without Keras.
CTC_DECODERS = ("greedy", "beam_search", "lexicon")


@dataclass(frozen=True)
class Interval:
    """The numbers a key allows: from ``low`` to ``high`` (None: no bound), each end included unless open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value):  # NaN is in no interval: every comparison with it is false
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below and value == value

    def __str__(self):
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Interval(0, low_open=True)
AT_LEAST_ONE = Interval(1)
NON_NEGATIVE = Interval(0)
FRACTION = Interval(0, 1, high_open=True)  # a share of something, never all of it
SHARE = Interval(0, 1)
# Audio lengths: longer clips or windows are a typo (1e6 s would allocate tens of gigabytes per batch).
SECONDS = Interval(0, 600, low_open=True)
SAMPLE_RATES = Interval(1000, 384000)


@dataclass(frozen=True)
class Key:
    """One config key: its type, default, allowed values (``choices``) and allowed numbers (``interval``)."""

    type: type | tuple
    default: object = None
    choices: tuple = ()
    interval: Interval | None = None


SCHEMA = {
    "name": Key(str, None),
    "task": Key(str, None, tuple(TASKS)),
    "description": Key(str, ""),
    "data": {
        "dataset": Key(str, REQUIRED),
        "data_dir": Key(str, None),
        "cache": Key(str, None),
        "options": Key(dict, {}),
        "sample_rate": Key(int, 16000, interval=SAMPLE_RATES),
        "clip_seconds": Key(float, None, interval=SECONDS),
        "windows": Key(int, None, interval=AT_LEAST_ONE),
        "window_seconds": Key(float, None, interval=SECONDS),
        "shuffle_buffer": Key(int, 1024, interval=NON_NEGATIVE),
        "random_crops": Key(bool, True),
        "random_windows": Key(bool, False),
        "metadata": Key(list, []),
        "prepare": Key(dict, {}),
        "extra_train": Key(list, []),
    },
    "split": {
        "method": Key(str, "random", ("random", "official", "fold", "kfold")),
        "val": Key(float, 0.1, interval=FRACTION),
        "test": Key(float, 0.2, interval=FRACTION),
        "k": Key(int, 5, interval=Interval(2)),
        "seed": Key(int, 0),
        "stratify": Key(bool, True),
        "fold": Key(int, 0, interval=NON_NEGATIVE),
        "train_folds": Key(list, []),
        "val_folds": Key(list, []),
        "test_folds": Key(list, []),
        "group_by": Key(str, "group", ("group", "none")),
    },
    "model": {
        "name": Key(str, REQUIRED),
        "input_mode": Key(str, "waveform", ("waveform", "features")),
        "weights": Key(str, None),
        "freeze": Key(str, "none", ("none", "backbone")),
    },
    "frontend": COMPONENT,
    "augment": COMPONENT,
    "balance": {
        "mode": Key(str, "none", ("none", "oversample", "undersample", "class_weight")),
        "target": Key(int, None, interval=AT_LEAST_ONE),
        "max_repeats": Key(float, None, interval=POSITIVE),
        "formula": Key(str, "report", ("report", "inverse")),
        "within": Key(str, ""),
    },
    "optimizer": {
        "name": Key(str, "adam", ("adam", "adamw", "sgd", "rmsprop")),
        "lr": Key(float, 1e-3, interval=POSITIVE),
        "weight_decay": Key(float, 0.0, interval=NON_NEGATIVE),
        "momentum": Key(float, 0.9, interval=FRACTION),
        "clipnorm": Key(float, None, interval=POSITIVE),
        "schedule": Key(str, "constant", ("constant", "cosine", "exponential", "plateau")),
        "decay_rate": Key(float, 0.95, interval=Interval(0, 1, low_open=True)),
        "min_lr": Key(float, 0.0, interval=NON_NEGATIVE),
        "warmup_epochs": Key(int, 0, interval=NON_NEGATIVE),
        "ema": Key(float, 0.0, interval=FRACTION),
        "backbone_lr_factor": Key(float, 1.0, interval=NON_NEGATIVE),
    },
    "train": {
        "epochs": Key(int, 30, interval=AT_LEAST_ONE),
        "batch_size": Key(int, 32, interval=AT_LEAST_ONE),
        "patience": Key(int, 10, interval=NON_NEGATIVE),
        "monitor": Key(str, "val_loss"),
        "mode": Key(str, "auto", ("auto", "min", "max")),
        "seed": Key(int, 0),
        "steps_per_epoch": Key(int, None, interval=AT_LEAST_ONE),
        "jit_compile": Key(str, "auto", ("auto", "on", "off")),
        # The Keras dtype policy the model is built under (coughclf.optim.dtype_policy); "off": float32.
        "mixed_precision": Key(str, "off", ("off", "mixed_bfloat16", "mixed_float16")),
    },
    "metrics": {
        "group_by": Key(list, []),
        "bootstrap": Key(int, 1000, interval=NON_NEGATIVE),
        "confidence": Key(float, 0.95, interval=Interval(0, 1, low_open=True, high_open=True)),
        "specificity": Key(float, 0.95, interval=Interval(0.5, 1, high_open=True)),
        "positive_class": Key(str, None),
        "examples": Key(int, 4, interval=NON_NEGATIVE),
    },
    # coughclf.tune: the search (see its module docstring)
    "tune": {
        "tuner": Key(str, "random", ("random", "bayesian", "hyperband")),
        "objective": Key(str, None),
        "direction": Key(str, "auto", ("auto", "min", "max")),
        "max_trials": Key(int, 10, interval=AT_LEAST_ONE),
        "executions_per_trial": Key(int, 1, interval=AT_LEAST_ONE),
        "cv": Key(int, 1, interval=AT_LEAST_ONE),
        "cv_folds": Key(str, None, ("kfold", "predefined")),
        "epochs": Key(int, None),
        "default_space": Key(bool, True),
        "seed": Key(int, None),
        "initial_points": Key(int, None),
        "max_epochs": Key(int, None),
        "factor": Key(int, 3, interval=Interval(2)),
        "hyperband_iterations": Key(int, 1, interval=AT_LEAST_ONE),
        "max_retries_per_trial": Key(int, 0),
        "max_consecutive_failed_trials": Key(int, 3),
        "compare_default": Key(bool, False),
        "space": Key(dict, {}),
    },
    # coughclf.speech: CTC training and decoding (see its module docstring)
    "ctc": {
        "numbers_as_words": Key(bool, True),
        "decoder": Key(str, "beam_search", CTC_DECODERS),
        "beam_width": Key(int, 32, interval=AT_LEAST_ONE),
        "lexicon": Key(str, ""),
        "examples": Key(int, 3, interval=NON_NEGATIVE),
        "bucket_boundaries": Key(list, []),
        "word_crops": Key(float, 0.0, interval=SHARE),
    },
    # coughclf.distillation: a frozen teacher's soft targets beside the labels (see its package docstring)
    "distill": {
        "teacher": Key((str, dict), None),  # a run or CV folder, a .keras file, or {model, weights, options}
        "teacher_classes": Key(list, []),   # the outputs of a teacher that records no classes, in order
        "teacher_input": Key(str, "augmented", ("augmented", "clean")),
        "temperature": Key(float, 2.0, interval=POSITIVE),
        "alpha": Key(float, 0.5, interval=SHARE),
        "unlabelled": Key(list, []),        # prepared caches or folders of audio that only the teacher labels
        "unlabelled_ratio": Key(float, 1.0, interval=POSITIVE),  # unlabelled batches per labelled batch
    },
}

# The numbers among [frontend]'s options (LogMelSpectrogram's parameters), checked like the keys above.
FRONTEND_NUMBERS = {
    "n_fft": Key(int, interval=AT_LEAST_ONE),
    "hop_length": Key(int, interval=AT_LEAST_ONE),
    "win_length": Key(int, interval=AT_LEAST_ONE),
    "n_mels": Key(int, interval=AT_LEAST_ONE),
    "fmin": Key(float, interval=NON_NEGATIVE),
    "fmax": Key(float, interval=POSITIVE),
    "power": Key(float, interval=POSITIVE),
    "amin": Key(float, interval=POSITIVE),
    "top_db": Key(float, interval=POSITIVE),
}

# Options of coughclf.prepare.prepare that [data].prepare may set; its numbers are checked like keys.
PREPARE_OPTIONS = ("trim_silence", "segment", "drop_conflicts", "shard_size", "max_file_seconds")
PREPARE_NUMBERS = {"shard_size": Key(int, interval=AT_LEAST_ONE), "max_file_seconds": Key(float, interval=POSITIVE)}
# Tables whose known keys are checked but which also carry options of another component.
OPEN_TABLES = {"model"}


class ExperimentConfig(dict):
    """A validated config: a plain nested dict plus ``source``, the file it came from."""

    source = "<config>"

    def copy(self):
        clone = ExperimentConfig(json.loads(json.dumps(self)))
        clone.source = self.source
        return clone


def _type_name(expected):
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             dict: "a table", list: "a list"}
    if isinstance(expected, tuple):
        return " or ".join(map(_type_name, expected))
    return names.get(expected, getattr(expected, "__name__", str(expected)))


def coerce_key_value(value, key, where, path):
    """``value`` as ``key.type`` (an int where a float is expected is fine); else a clear error."""
    expected = key.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    valid = isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))
    if not valid:
        raise CoughclfError(f"{path}: {where} must be {_type_name(expected)}, got {value!r}; "
                            "fix the value in the file or in --set")
    if key.choices and value not in key.choices:
        raise CoughclfError(f"{path}: {where} = {value!r} is not one of {', '.join(map(repr, key.choices))}")
    if key.interval is not None and value not in key.interval:
        raise CoughclfError(f"{path}: {where} = {value!r} must be {key.interval}; fix the value in the file or in --set")
    return value


def _apply_schema(raw, path):
    """Merge ``raw`` over the schema defaults, checking every key and type."""
    config = {}
    for name in raw:
        if name not in SCHEMA:
            unknown_key(name, name, SCHEMA, path)
    for name, entry in SCHEMA.items():
        if isinstance(entry, Key):
            value = raw.get(name, entry.default)
            if value is REQUIRED:
                raise CoughclfError(f"{path}: required key {name!r} is missing")
            config[name] = None if value is None else coerce_key_value(value, entry, name, path)
            continue
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise CoughclfError(f"{path}: [{name}] must be a table, got {table!r}")
        if entry == COMPONENT:
            config[name] = dict(table)
            continue
        section = {}
        for key_name, value in table.items():
            if key_name not in entry and name not in OPEN_TABLES:
                unknown_key(key_name, f"{name}.{key_name}", entry, path)
        for key_name, key in entry.items():
            value = table.get(key_name, key.default)
            if value is REQUIRED:
                raise CoughclfError(f"{path}: required key '{name}.{key_name}' is missing "
                                    f"(add it under [{name}] or with --set {name}.{key_name}=...)")
            where = f"{name}.{key_name}"
            section[key_name] = None if value is None else coerce_key_value(value, key, where, path)
        if name in OPEN_TABLES:
            section.update({k: v for k, v in table.items() if k not in entry})
        config[name] = section
    return config


def _schema_key(parts):
    entry = SCHEMA.get(parts[0])
    if isinstance(entry, Key) and len(parts) == 1:
        return entry
    if isinstance(entry, dict) and len(parts) == 2:
        return entry.get(parts[1])
    return None


def apply_override(raw, assignment):
    """Apply one ``section.key=value`` assignment (read by :mod:`coughclf.overrides`) to the raw, not yet
    validated config dict."""
    parts, text = split_assignment(assignment)
    key = _schema_key(parts)
    value = parse_value(text, f"--set {assignment!r}")
    if key is not None and key.type is str and not isinstance(value, str):
        value = text  # a name like 'model.name=1e4' stays the string it was written as
    if key is not None and key.type is list and not isinstance(value, list):
        value = [value]
    target = raw
    for part in parts[:-1]:
        existing = target.setdefault(part, {})
        if not isinstance(existing, dict):
            raise CoughclfError(f"--set {assignment!r}: {part!r} is a value, not a table")
        target = existing
    target[parts[-1]] = value


def _validate_references(config, path):
    """Names that must exist: the dataset, the model and the model's options."""
    from coughclf import datasets, models

    if config["data"]["dataset"] not in datasets.available():
        raise CoughclfError(f"{path}: data.dataset = {config['data']['dataset']!r} is not a known "
                            f"dataset; choose one of: {', '.join(datasets.available())}")
    model_name = config["model"]["name"]
    if model_name not in models.available():
        raise CoughclfError(f"{path}: model.name = {model_name!r} is not a known model; "
                            f"choose one of: {', '.join(models.available())}")
    spec = models.spec(model_name)
    if config["task"] is None:
        config["task"] = spec.task
    elif config["task"] != spec.task:
        raise CoughclfError(f"{path}: task = {config['task']!r} but model {model_name!r} is a "
                            f"{spec.task!r} model; remove 'task' or pick a {config['task']} model")
    _validate_pretrained(config, spec, path)
    accepted = models.accepted_options(model_name)
    for option in model_options(config):
        if option not in accepted:
            unknown_key(option, f"model.{option}", [*SCHEMA["model"], *accepted], path)
    frontend = frontend_values(config["frontend"])
    for name, key in FRONTEND_NUMBERS.items():
        if frontend.get(name) is not None:
            coerce_key_value(config["frontend"][name], key, f"frontend.{name}", path)
    if config["frontend"] and spec.defaults.get("frontend") is None:
        raise CoughclfError(f"{path}: [frontend] is set but {model_name} reads the raw waveform and has no "
                            "spectrogram front end; remove [frontend]")
    known = frontend_options() if config["frontend"] else ()
    for key in config["frontend"]:
        if key not in known:
            unknown_key(key, f"frontend.{key}", known, path)
    if spec.defaults.get("frontend") is not None:
        from coughclf.layers.frontend import LogMelSpectrogram

        rate = config["data"]["sample_rate"]
        try:  # the layer checks its values, with the data's rate (fmax, empty mel filters); it has no weights yet
            LogMelSpectrogram(sample_rate=rate, **{**spec.defaults["frontend"], **frontend})
        except (CoughclfError, ValueError, TypeError) as error:
            raise CoughclfError(f"{path}: [frontend]: {error} (data.sample_rate = {rate})") from None
    if config["augment"]:
        from coughclf.layers.augment import SPECTROGRAM_AUGMENTATIONS, WAVEFORM_AUGMENTATIONS, build_augmentation
        from coughclf.mixing import AUGMENT_KEYS, mixing_from_augment
        from coughclf.pretrained.embedding_views import VIEWS_KEY, embedding_views

        known = {"seed", *WAVEFORM_AUGMENTATIONS, *SPECTROGRAM_AUGMENTATIONS, *AUGMENT_KEYS, VIEWS_KEY}
        for key in config["augment"]:
            if key not in known:
                unknown_key(key, f"augment.{key}", known, path)
        mixing, layer_settings = mixing_from_augment(config["augment"], path)
        embedding_views(config)
        if mixing.active and config["task"] == "ctc":
            raise CoughclfError(f"{path}: augment.{'/'.join(AUGMENT_KEYS)} mix class targets; a speech (ctc) "
                                "model has transcripts: remove them")
        try:  # the layers check their own options; building them is cheap and catches a bad value now
            build_augmentation(layer_settings)
        except CoughclfError as error:
            raise CoughclfError(f"{path}: [augment]: {error}") from None
    if config["distill"]["teacher"] is not None:
        from coughclf.distillation.settings import check_distill

        check_distill(config, path)
    data = config["data"]
    from coughclf.datasets.extra import check_entries

    check_entries(data["extra_train"], path)
    for key, value in data["prepare"].items():
        if key not in PREPARE_OPTIONS:
            unknown_key(key, f"data.prepare.{key}", PREPARE_OPTIONS, path)
        if key in PREPARE_NUMBERS:
            coerce_key_value(value, PREPARE_NUMBERS[key], f"data.prepare.{key}", path)
    if data["windows"] is not None and data["window_seconds"] is None:
        raise CoughclfError(f"{path}: data.windows is set but data.window_seconds is not; "
                            "give both (e.g. windows = 9, window_seconds = 1.0)")
    if config["balance"]["within"] and config["balance"]["mode"] not in ("oversample", "undersample"):
        raise CoughclfError(f"{path}: balance.within = {config['balance']['within']!r} resamples cells, so "
                            f"balance.mode must be 'oversample' or 'undersample', not {config['balance']['mode']!r}")
    optimizer = config["optimizer"]
    if optimizer["warmup_epochs"] and optimizer["schedule"] == "plateau":
        raise CoughclfError(f"{path}: optimizer.warmup_epochs needs an epoch-wise schedule, not 'plateau' "
                            "(ReduceLROnPlateau sets the rate itself); set optimizer.schedule to "
                            "constant, cosine or exponential")
    if not 0 <= optimizer["warmup_epochs"] < config["train"]["epochs"]:
        raise CoughclfError(f"{path}: optimizer.warmup_epochs = {optimizer['warmup_epochs']} must be "
                            f"between 0 and train.epochs - 1 ({config['train']['epochs'] - 1})")
    monitors = TASKS[config["task"]].monitors
    for where, value in (("train.monitor", config["train"]["monitor"]), ("tune.objective", config["tune"]["objective"])):
        if value is not None and value not in monitors:
            unknown_value(value, where, monitors, path, f"the values a {config['task']} run logs")


def frontend_values(frontend):
    """[frontend] as the layer takes it: the string ``"none"`` is None (TOML has no null; the
    config keeps the string, so that a run's config.toml still says it)."""
    return {key: None if value == "none" else value for key, value in frontend.items()}


def frontend_options():
    """The options [frontend] may set: LogMelSpectrogram's parameters but its sample rate (the data's)."""
    import inspect

    from coughclf.layers.frontend import LogMelSpectrogram

    parameters = inspect.signature(LogMelSpectrogram.__init__).parameters
    return sorted(name for name, p in parameters.items()
                  if name not in ("self", "sample_rate", "name") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def _validate_pretrained(config, spec, path):
    """[model] weights and freeze and [optimizer] backbone_lr_factor: a model that reads checkpoints, and a
    checkpoint for the other two (whether the file exists is :func:`check_data`'s, before the data)."""
    weights, freeze = config["model"]["weights"], config["model"]["freeze"]
    factor = config["optimizer"]["backbone_lr_factor"]
    if (weights or freeze != "none" or factor != 1.0) and spec.pretrained is None:
        from coughclf import models

        takers = [name for name in models.available() if models.spec(name).pretrained is not None]
        raise CoughclfError(f"{path}: model.weights, model.freeze and optimizer.backbone_lr_factor need a model "
                            f"that reads pretrained checkpoints; {spec.name} does not (use {', '.join(takers)})")
    if not weights and (freeze != "none" or factor != 1.0):
        raise CoughclfError(f"{path}: model.freeze / optimizer.backbone_lr_factor apply to pretrained weights; "
                            "set model.weights to a checkpoint (or remove them)")
    if factor < 0.0:
        raise CoughclfError(f"{path}: optimizer.backbone_lr_factor = {factor} must be >= 0 (0 freezes the "
                            "backbone's weights but not its BatchNorm statistics; prefer model.freeze)")


def model_options(config):
    """The builder options given under [model] (everything but ``name`` and ``input_mode``)."""
    return {k: v for k, v in config["model"].items() if k not in SCHEMA["model"]}


def _moved_experiment(path):
    """``experiments/NAME.toml`` from before the configs were grouped by task
    (``experiments/esc/NAME.toml``): the grouped file, said on stderr; any other path as given."""
    if path.exists() or path.parent.name != "experiments" or not path.parent.is_dir():
        return path
    grouped = sorted(path.parent.glob(f"*/{path.name}"))
    if len(grouped) != 1:
        return path
    print(f"note: {path} is now {grouped[0]} (experiments are grouped by task); reading that",
          file=sys.stderr, flush=True)
    return grouped[0]


def load_config(path, overrides=(), *, check_names=True) -> ExperimentConfig:
    """Read, override and validate an experiment config.

    Args:
        path: the TOML file.
        overrides: ``"section.key=value"`` strings (``--set``); values are read as TOML
            (``1e-4``, ``true``, ``[1, 2]``, ``"text"``) and fall back to plain text.
        check_names: also check that the dataset, the model and its options exist.

    Returns:
        an :class:`ExperimentConfig` with every default filled in; ``name`` defaults to
        the file's stem.

    Raises:
        CoughclfError: naming the file and the key for any unknown key, wrong type,
            value out of range, unknown dataset or model.
    """
    path = _moved_experiment(Path(path))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoughclfError(f"config file {path} not found; give the path of a .toml experiment "
                            "(see experiments/)") from None
    except tomllib.TOMLDecodeError as error:
        raise CoughclfError(f"{path}: not valid TOML: {error}") from None
    for assignment in overrides:
        apply_override(raw, assignment)
    config = ExperimentConfig(_apply_schema(raw, path))
    config.source = str(path)
    _name_run(config, path.stem, path)
    if check_names:
        _validate_references(config, path)
    return config


def config_from_dict(raw, source="<config>", *, check_names=True) -> ExperimentConfig:
    """Validate an already-parsed config dict (e.g. built by the tuner) the way load_config does."""
    config = ExperimentConfig(_apply_schema(json.loads(json.dumps(raw)), source))
    config.source = source
    _name_run(config, "experiment", source)
    if check_names:
        _validate_references(config, source)
    return config


def _name_run(config, default, path):
    """Set ``name`` (``default`` when unset) and check it: it names the run's folder in saved_models/."""
    from coughclf.files import folder_name_problem

    name = config["name"] = default if config["name"] is None else config["name"]
    if folder_name_problem(name):
        raise CoughclfError(f"{path}: name = {name!r} {folder_name_problem(name)}: it names the run's folder in "
                            "saved_models/ (a folder elsewhere is --run-dir's); set another name")


def check_data(config):
    """Fail early when there is neither a complete cache nor a data folder, or model.weights names no file."""
    data, source = config["data"], config.source
    weights = config["model"]["weights"]
    if weights and not Path(weights).exists():
        from coughclf.models import spec

        where = spec(config["model"]["name"]).pretrained.where_to_get
        raise CoughclfError(f"{source}: model.weights = {weights!r} does not exist; download the checkpoint ({where}) "
                            "and set model.weights to its path")
    cache = data["cache"]
    if cache is not None and (Path(cache) / "manifest.csv").exists():
        return  # a complete cache: the data folder is not needed
    if data["data_dir"] is None:
        if cache is not None and Path(cache).exists():
            from coughclf.cache import check_cache

            check_cache(cache)  # says what is wrong with it (unfinished, not a cache) and the fix
        where = f"data.cache = {cache!r} does not exist" if cache else "no data.cache"
        raise CoughclfError(f"{source}: {where} and data.data_dir is not set; set data.data_dir to "
                            "the dataset's folder (it is prepared on first use) or run "
                            "'coughclf prepare' and set data.cache")
    if not Path(data["data_dir"]).is_dir():
        raise CoughclfError(f"{source}: data.data_dir = {data['data_dir']!r} is not a folder; "
                            "download the dataset there ('coughclf download') or fix the path")
    from coughclf.datasets.extra import check_folders
    check_folders(data["extra_train"], source)


# --- writing -----------------------------------------------------------------------------------

def dumps_config(config) -> str:
    """A config as TOML text that ``load_config`` reads back to the same dict (None values omitted)."""
    from coughclf.toml_writer import dumps_toml

    return dumps_toml(dict(config))


def dump_config(config, path):
    """Write ``config`` to ``path`` as TOML, atomically (temporary file, then rename)."""
    from coughclf.files import write_text

    return write_text(path, dumps_config(config))
