"""Model registry: ``build(name, weights=None, **options)``, ``available()``, ``spec(name)``.

Each architecture module registers its builders with :func:`register_model`;
they are imported on first use. A model registered with ``pretrained=`` (a
:class:`coughclf.models.checkpoints.PretrainedSupport`) also builds from a published
checkpoint: ``build("ast", weights="ast-finetuned-audioset-10-10-0.4593/")``.
"""

import functools
import sys
from dataclasses import dataclass, field
from typing import Callable

from coughclf.errors import CoughclfError
from coughclf.plugins import submodules


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    Attributes:
        name: registry name, e.g. ``"cough_crnn"``.
        task: ``"classification"`` or ``"ctc"``.
        builder: ``builder(**options) -> keras.Model``.
        report: the report and table it reproduces.
        report_params: trainable parameter count printed in the report.
        param_difference: Keras count minus report count, by construction (0 if none).
        difference_reason: why they differ (e.g. "Keras LSTM: one bias, 4*h fewer per direction").
        defaults: the report's default options (input shape, classes, front end, clip length).
        pretrained: how it reads published checkpoints (``build(name, weights=PATH)``), or None.
    """

    name: str
    task: str
    builder: Callable
    report: str
    report_params: int
    param_difference: int = 0
    difference_reason: str = ""
    defaults: dict = field(default_factory=dict)
    pretrained: object = None

    @property
    def weight_formats(self):
        """Checkpoint formats ``build(name, weights=PATH)`` reads (keys of ``checkpoints.FORMATS``)."""
        return tuple(self.pretrained.formats) if self.pretrained else ()


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name, *, task="classification", report, report_params, param_difference=0,
                   difference_reason="", defaults=None, pretrained=None):
    """Decorator registering a builder function under ``name``."""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, task, builder, report, report_params, param_difference,
                                    difference_reason, dict(defaults or {}), pretrained)
        return builder

    return decorator


@functools.cache
def _load_all():
    submodules(sys.modules[__name__])


def available():
    """Registered model names, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def spec(name) -> ModelSpec:
    _load_all()
    if name not in _REGISTRY:
        raise CoughclfError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))} "
                            "(see 'coughclf models')")
    return _REGISTRY[name]


def accepted_options(name):
    """Names of the options the model's builder takes.

    A builder with ``**input_options`` passes them to
    :func:`coughclf.models.common.classifier_inputs`, so those are accepted too.
    """
    import inspect

    from coughclf.models.common import classifier_inputs

    parameters = inspect.signature(spec(name).builder).parameters
    named = {key for key, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        named |= set(inspect.signature(classifier_inputs).parameters) - {"input_mode", "name"}
    return named


def build(name, weights=None, freeze="none", **options):
    """Build the registered model ``name``; ``options`` override the report's defaults.

    ``weights``: a published checkpoint (see :mod:`coughclf.models.checkpoints`); the
    architecture is read from it and ``options`` override it (``num_classes`` for a new head,
    ``frames`` for another clip length). ``freeze="backbone"`` (with ``weights``) trains the
    head only.
    """
    model_spec = spec(name)
    accepted = accepted_options(name)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise CoughclfError(f"{name}: unknown options {unknown}; it takes {', '.join(sorted(accepted))}")
    if weights is None:
        if freeze != "none":
            raise CoughclfError(f"freeze={freeze!r} needs weights=: a randomly initialised backbone "
                                "cannot stay frozen")
        return model_spec.builder(**options)
    from coughclf.models.checkpoints import load_pretrained

    return load_pretrained(model_spec, weights, options, freeze)[0]
