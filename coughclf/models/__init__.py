"""Model registry: ``build(name, **options)``, ``available()``, ``spec(name)``.

Each architecture module registers its builders with :func:`register_model`;
they are imported on first use.
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
    """

    name: str
    task: str
    builder: Callable
    report: str
    report_params: int
    param_difference: int = 0
    difference_reason: str = ""
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name, *, task="classification", report, report_params, param_difference=0,
                   difference_reason="", defaults=None):
    """Decorator registering a builder function under ``name``."""

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, task, builder, report, report_params, param_difference,
                                    difference_reason, dict(defaults or {}))
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


def build(name, **options):
    """Build the registered model ``name``; ``options`` override the report's defaults."""
    return spec(name).builder(**options)
