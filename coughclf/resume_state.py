"""The resume state of a run: what a run killed after an epoch needs to go on as if it had not stopped.

``resume.weights.h5`` in the run folder is rewritten atomically at the end of every epoch
(:func:`write_resume_state`) and deleted once the run's training.json is written. It holds:

* the model's weights and the optimizer's variables (``model.save_weights``): Adam's
  moments, the iteration count its bias correction reads, the learning rate that
  ReduceLROnPlateau lowered, the weight averages of ``optimizer.ema``, a loss scale;
* the states of the model's random generators (the ``keras.random.SeedGenerator`` of
  dropout and of the augmentation layers), which are variables but not weights, so
  ``save_weights`` leaves them out: they go in a group of their own in the same file;
* the epoch to resume at, whether training had stopped (early stopping, a NaN loss),
  and the counters of the Keras callbacks that steer the epochs after them
  (:data:`CALLBACK_COUNTERS`), which they would otherwise reset when training starts again.

Nothing else is needed for the resumed run to be the interrupted one: the data's draws
are keyed by the epoch (:mod:`coughclf.epoch_keys`), the learning-rate schedule is a
function of the epoch (:func:`coughclf.optim.learning_rate_at`), and best.keras and the
best value come from the run's history (:mod:`coughclf.runs`). best.keras itself holds no
optimizer state (:func:`coughclf.model_files.save_model_file`).
"""

import json
from pathlib import Path
from typing import NamedTuple

from coughclf.errors import CoughclfError
from coughclf.files import atomic_path

RESUME_STATE = "resume.weights.h5"  # Keras' save_weights wants the ".weights.h5" ending
_GROUP = "coughclf_resume"          # beside Keras' own groups: what save_weights leaves out

# Keras callbacks whose counters steer the epochs after them, and the counters (each reset by
# the callback's on_train_begin, so they are set back after it).
CALLBACK_COUNTERS = {"EarlyStopping": ("wait", "best", "best_epoch"),
                     "ReduceLROnPlateau": ("wait", "cooldown_counter", "best")}


class ResumePoint(NamedTuple):
    """Where a run resumes: the epoch (counting from 0) and whether training had already stopped."""

    epoch: int
    stopped: bool
    counters: list


def random_generator_states(model):
    """The variables of ``model`` that are not weights: the states of its random generators."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _counted_callbacks(callbacks):
    """``[(callback, counter names)]`` of the callbacks of :data:`CALLBACK_COUNTERS`, in order."""
    import keras

    return [(callback, names) for callback in callbacks for kind, names in CALLBACK_COUNTERS.items()
            if isinstance(callback, getattr(keras.callbacks, kind))]


def _plain(value):
    """A counter as JSON takes it (Keras keeps some as NumPy scalars)."""
    return value if value is None or isinstance(value, (bool, int)) else float(value)


def write_resume_state(path, model, *, epoch, stopped, callbacks):
    """Write the resume state of ``model`` after ``epoch`` epochs (see the module docstring) to ``path``."""
    import h5py
    import keras

    state = {"epoch": epoch, "stopped": bool(stopped),
             "counters": [{name: _plain(getattr(callback, name)) for name in names}
                          for callback, names in _counted_callbacks(callbacks)]}
    with atomic_path(path, suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
        with h5py.File(temporary, "a") as handle:
            group = handle.create_group(_GROUP)
            for index, variable in enumerate(random_generator_states(model)):
                group.create_dataset(str(index), data=keras.ops.convert_to_numpy(variable))
            group.attrs["state"] = json.dumps(state)


def _damaged(path, error):
    return CoughclfError(f"{path} is damaged ({type(error).__name__}: {error}); delete it to train the run "
                         "again from its first epoch")


def read_resume_point(path):
    """The :class:`ResumePoint` saved in ``path``, or None when there is no resume state."""
    import h5py

    path = Path(path)
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as handle:
            state = json.loads(handle[_GROUP].attrs["state"])
    except (OSError, KeyError, ValueError) as error:
        raise _damaged(path, error) from None
    return ResumePoint(state["epoch"], state["stopped"], state["counters"])


def restore_resume_state(path, model, callbacks):
    """Set ``model``'s variables (weights, optimizer, random generators) and the counters of ``callbacks``
    back to what ``path`` saved; run after the callbacks' own ``on_train_begin``."""
    import h5py

    point = read_resume_point(path)
    if not model.optimizer.built:  # its variables must exist to be loaded
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    generators = random_generator_states(model)
    with h5py.File(path, "r") as handle:
        saved = [handle[_GROUP][str(index)][()] for index in range(len(handle[_GROUP]))]
    counted = _counted_callbacks(callbacks)
    if len(saved) != len(generators) or len(point.counters) != len(counted):
        raise CoughclfError(f"{path} was saved by a run with {len(saved)} random generators and "
                            f"{len(point.counters)} counted callbacks, this one has {len(generators)} and "
                            f"{len(counted)}; delete it to train the run again from its first epoch")
    for variable, value in zip(generators, saved):
        variable.assign(value)
    for (callback, _), counters in zip(counted, point.counters):
        for name, value in counters.items():
            setattr(callback, name, value)
    return point
