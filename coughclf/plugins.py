"""Discovery of the modules that extend coughclf: commands, benchmarks, datasets, models.

Adding a file to one of those packages is all it takes to add a command, a benchmark,
a dataset loader or an architecture; no central list has to be edited.
"""

import importlib
import pkgutil


def submodules(package, skip=()):
    """``(name, module)`` for every module of ``package`` except ``skip``, imported, sorted by name."""
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if info.name not in skip)
    return [(name, importlib.import_module(f"{package.__name__}.{name}")) for name in names]
