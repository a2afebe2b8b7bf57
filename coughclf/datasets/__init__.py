"""Dataset registry: ``get(name)``, ``available()``.

Every module in this package that registers a dataset is imported on first use.
"""

import functools
import sys

from coughclf.datasets.base import Archive, Clip, DatasetSpec, register_dataset
from coughclf.errors import CoughclfError
from coughclf.plugins import submodules

__all__ = ["Archive", "Clip", "DatasetSpec", "available", "get", "register_dataset"]


@functools.cache
def _load_all():
    submodules(sys.modules[__name__], skip=("base",))


def available():
    """Names of all registered datasets, sorted."""
    _load_all()
    from coughclf.datasets.base import _REGISTRY

    return sorted(_REGISTRY)


def get(name) -> DatasetSpec:
    """The registered dataset ``name``; a clear error lists the valid names otherwise."""
    _load_all()
    from coughclf.datasets.base import _REGISTRY

    if name not in _REGISTRY:
        raise CoughclfError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(_REGISTRY))} "
                            "(see 'coughclf datasets')")
    return _REGISTRY[name]
