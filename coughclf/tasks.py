"""The tasks a config can train (``task = ...``): how each prepares its fit and evaluates a run.

``coughclf.train`` and ``coughclf.evaluate`` look a task up here instead of importing
its module, so the task modules (:mod:`coughclf.classification`, :mod:`coughclf.speech`)
depend on the shared run machinery (:mod:`coughclf.fitting`, :mod:`coughclf.inputs`,
:mod:`coughclf.runs`) and never on the modules that dispatch to them. A task module is
imported only when its task is used.

Each task gives:

``plan_fit(config, run_dir, cache, split, strategy)``
    the :class:`coughclf.fitting.FitPlan` of a run (model, datasets, monitor, callbacks);
``evaluate(run_dir, data=None, split="test", make_plots=True)``
    the evaluation of a finished run's ``best.keras``: writes metrics.json, returns the results.
"""

import importlib
from typing import NamedTuple

from coughclf.errors import CoughclfError


class Task(NamedTuple):
    module: str     # the module holding the functions below
    plan_fit: str   # its function preparing a fit
    evaluate: str   # its function evaluating a run


TASKS = {
    "classification": Task("coughclf.classification", "plan_fit", "evaluate_run"),
    "ctc": Task("coughclf.speech", "plan_fit", "evaluate_run"),
}


class TaskFunctions(NamedTuple):
    name: str
    plan_fit: object
    evaluate: object


def get(name):
    """The functions of task ``name`` (:data:`TASKS`), its module imported now."""
    if name not in TASKS:
        raise CoughclfError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    task = TASKS[name]
    module = importlib.import_module(task.module)
    return TaskFunctions(name, getattr(module, task.plan_fit), getattr(module, task.evaluate))
