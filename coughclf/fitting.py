"""The fit of a run, shared by every task: seed, split.json, resume, callbacks, best row, training.json.

A task (:mod:`coughclf.tasks`) only says what is particular to it through its
``plan_fit(config, run_dir, cache, split, strategy)``, which returns a :class:`FitPlan`:
the compiled model, its training and validation data, the value to monitor and any
callbacks of its own (which run before the checkpoint and history callbacks, so they may
add values to the epoch's logs, as CTC's CER does). :func:`fit_run` does the rest the
same way for every task, so a resumed CTC run and a resumed classifier stop, keep their
best model and write their history alike.
"""

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

from coughclf.console import fit_verbose, report
from coughclf.epoch_keys import keyed_by_epoch
from coughclf.errors import CoughclfError
from coughclf.files import read_json, write_csv, write_json
from coughclf.inputs import describe_split, open_data, run_split
from coughclf.model_files import save_model_file
from coughclf.optim import dtype_policy, schedule_callback, weight_averaging_callbacks
from coughclf.resume_state import RESUME_STATE, restore_resume_state, write_resume_state
from coughclf.runs import PENDING_BEST, best_row, history_rows, is_chief, resumed_rows, settle_pending_best


class FitPlan(NamedTuple):
    """What a task hands :func:`fit_run`."""

    model: object            # built and compiled in the strategy's scope
    train_data: object       # a tf.data.Dataset of (inputs, targets) batches
    validation_data: object  # the same for the validation split, or None without one
    monitor: str             # the log value that picks best.keras and stops early
    mode: str                # "min" or "max"
    callbacks: tuple = ()    # the task's own, run before the checkpoint and history callbacks
    class_weight: object = None
    summary: dict = {}       # the task's entries of training.json
    verbose: object = None   # Keras' fit verbosity when the task needs one; None: coughclf.console decides
    saved_model: object = None  # what best.keras holds when not ``model``: a whole model sharing its layers


def fit_run(config, run_dir, strategy, plan_fit, *, split=None, callbacks=()):
    """Train in an already claimed ``run_dir`` (skipped if it finished); returns training.json's dict.

    ``plan_fit`` is the task's (:mod:`coughclf.tasks`); ``split`` overrides [split] (cross-validation);
    ``callbacks`` run after the run's own.
    """
    import keras
    import tensorflow as tf

    run_dir = Path(run_dir)
    if (run_dir / "training.json").exists():
        report(f"{run_dir} has finished training; evaluating only")
        return read_json(run_dir / "training.json")
    keras.utils.set_random_seed(config["train"]["seed"])
    cache = open_data(config)
    split = run_split(config, cache, run_dir, split)
    report(f"split: {describe_split(cache, split)}")
    steps = config["train"]["steps_per_epoch"]
    # The model and its layers take the policy; the data's draws are keyed by the clock's epoch, so that a
    # resumed run draws the batches of the epochs it resumes (coughclf.epoch_keys). Not with steps_per_epoch:
    # an epoch is then no pass over the data, and passes that begin in one epoch would draw alike.
    with (dtype_policy(config["train"]["mixed_precision"]), damaged_shards_named(cache),
          keyed_by_epoch(active=not steps) as clock):
        plan = plan_fit(config, run_dir, cache, split, strategy)
    if not split["validation"] and plan.monitor.startswith("val_"):
        raise CoughclfError(f"{config.source}: no validation clips (split.val = {config['split']['val']}) but "
                            f"train.monitor = {plan.monitor!r}; set split.val > 0 or monitor a training metric")
    train_data, validation_data = plan.train_data, plan.validation_data
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        # Shard batches, not files: a small cache has fewer shard files than workers.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_data = train_data.with_options(options)
        validation_data = validation_data.with_options(options) if validation_data else None
    if steps:
        train_data = train_data.repeat()
    resumed, rows_before = resumed_rows(run_dir)
    resumed_at = resumed.epoch if resumed else 0
    settle_pending_best(run_dir, resumed_at)
    if resumed_at:
        report(f"resuming {run_dir} at epoch {resumed_at + 1}")
    epochs = config["train"]["epochs"]
    started = time.time()
    with damaged_shards_named(cache):
        history = plan.model.fit(
            train_data, validation_data=validation_data, epochs=epochs, steps_per_epoch=steps,
            initial_epoch=epochs if resumed and resumed.stopped else resumed_at,
            class_weight=plan.class_weight, verbose=fit_verbose(plan.verbose), shuffle=False,
            callbacks=[clock.callback(), *run_callbacks(config, run_dir, plan, rows_before, is_chief(strategy)),
                       *callbacks])
    rows = history_rows(run_dir)
    best = best_row([row for row in rows if nan_epoch([row]) is None], plan.monitor, plan.mode)
    failed_at = nan_epoch(rows)
    remedy = (f"lower optimizer.lr (now {config['optimizer']['lr']}), set optimizer.clipnorm or check the data "
              "(then train again in a new --run-dir)")
    if not (run_dir / "best.keras").exists():
        why = (f"the loss became NaN in epoch {failed_at + 1}" if failed_at is not None
               else f"{plan.monitor} never improved")
        raise CoughclfError(f"training in {run_dir} kept no model: {why}; {remedy}")
    summary = {
        "epochs_run": len(rows),
        "epochs_this_session": len(history.epoch),
        "resumed_at_epoch": resumed_at,
        "stopped_early": failed_at is None and len(rows) < config["train"]["epochs"],
        "terminated_on_nan": failed_at is not None,
        "monitor": plan.monitor,
        "best_epoch": best["epoch"] if best else None,
        "best_value": best[plan.monitor] if best else None,
        "seconds_this_session": round(time.time() - started, 1),
        "parameters": int(sum(math.prod(w.shape) for w in plan.model.trainable_weights)),
        **plan.summary,
        "cache": str(Path(cache.root).resolve()),
    }
    if failed_at is not None:
        kept = f"epoch {best['epoch'] + 1}" if best else "an earlier epoch"
        summary["stopped_because"] = (f"the loss became NaN in epoch {failed_at + 1}; best.keras is the model of "
                                      f"{kept}; {remedy}")
        print(f"{run_dir}: training stopped: {summary['stopped_because']}", file=sys.stderr)
    write_json(run_dir / "training.json", summary)
    (run_dir / RESUME_STATE).unlink(missing_ok=True)  # the run is finished: nothing to resume
    return summary


def _finite(value):
    return value is not None and math.isfinite(value)


def nan_epoch(rows):
    """The first epoch (counting from 0) whose loss or validation loss is not a number, or None.

    history.json holds NaN as null, so a missing value of a key the row has counts too.
    """
    for row in rows:
        if any(key in row and not _finite(row[key]) for key in ("loss", "val_loss")):
            return row["epoch"]
    return None


@contextlib.contextmanager
def damaged_shards_named(cache):
    """TensorFlow's data-loss error (a shard damaged without changing its size, which opening the
    cache cannot see) as an error naming the shard and the repair."""
    import tensorflow as tf

    from coughclf.cache import repair_hint, verify_cache

    try:
        yield
    except tf.errors.DataLossError as error:
        problems = verify_cache(cache.root, full=True)
        where = (f"{problems[0][0]} is damaged: {problems[0][1]}" if problems
                 else f"a shard of {cache.root} could not be read ({str(error).splitlines()[0]})")
        raise CoughclfError(f"{where}; {repair_hint(cache.root)}") from None


def run_callbacks(config, run_dir, plan, rows_before, chief):
    """The run's callbacks: NaN stop, averaging, the task's, schedule, best model, history, early stop,
    then the commit of the epoch (and, when training starts again, the restore of the last one).

    An epoch's records are one step: its history row and its best-model candidate are
    written first, then the resume state that says a resumed run starts after this epoch,
    then the candidate becomes best.keras (:func:`coughclf.runs.settle_pending_best`
    finishes that step for a run killed within it).
    """
    import keras

    run_dir = Path(run_dir)

    class EpochHistory(keras.callbacks.Callback):
        """history.csv/json rewritten atomically each epoch; rows of a resumed run continue the old ones."""

        def __init__(self, rows):
            super().__init__()
            self.rows = list(rows)

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch, "learning_rate": float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))}
            row.update({key: float(value) for key, value in (logs or {}).items() if key != "learning_rate"})
            self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
            write_json(run_dir / "history.json", self.rows)
            write_csv(run_dir / "history.csv", self.rows)

    class BestModel(keras.callbacks.Callback):
        """The epoch's candidate ``best.pending-NNNN.keras`` when ``monitor`` beats the best value so far:
        the model alone (:func:`coughclf.model_files.save_model_file`), never one whose loss is not a
        number (the weights of such an epoch are NaN whatever the monitored value says)."""

        def __init__(self, best_value):
            super().__init__()
            self.best = best_value

        def set_model(self, model):
            # A head trained on cached embeddings is saved as the whole model whose layers it shares.
            super().set_model(plan.saved_model or model)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = logs.get(monitor)
            if not _finite(value) or not all(_finite(logs[key]) for key in ("loss", "val_loss") if key in logs):
                return
            if self.best is None or (value > self.best if mode == "max" else value < self.best):
                self.best = value
                save_model_file(self.model, run_dir / PENDING_BEST.format(epoch=epoch + 1))

    class CommitEpoch(keras.callbacks.Callback):
        """The epoch's resume state, then its best-model candidate promoted: the last records of an epoch.
        Training started again restores the last committed epoch's state, after the other callbacks
        have reset their counters."""

        def on_train_begin(self, logs=None):
            if resume_state.exists():
                restore_resume_state(resume_state, self.model, callbacks)

        def on_epoch_end(self, epoch, logs=None):
            # The resume state keeps the raw weights, their average in the optimiser, as they were
            # before SwapEMAWeights put the average in the model for the checkpoint.
            for swap in averaging:
                swap.on_epoch_begin(epoch + 1)
            write_resume_state(resume_state, self.model, epoch=epoch + 1, stopped=self.model.stop_training,
                               callbacks=callbacks)
            for swap in averaging:
                swap.on_epoch_end(epoch)
            settle_pending_best(run_dir, epoch + 1)

    class StopOnNaN(keras.callbacks.TerminateOnNaN):
        """TerminateOnNaN, which watches the training batches, and the validation loss at the epoch's end."""

        def on_epoch_end(self, epoch, logs=None):
            if "val_loss" in (logs or {}) and not _finite(logs["val_loss"]):
                report(f"Epoch {epoch + 1}: invalid validation loss, terminating training")
                self.model.stop_training = True

    monitor, mode = plan.monitor, plan.mode
    best = best_row(rows_before, monitor, mode)
    resume_state = run_dir / RESUME_STATE
    averaging = weight_averaging_callbacks(config)
    callbacks = [
        StopOnNaN(),
        *averaging,
        # Before the schedule, the checkpoint and the history, which read the values they add to the logs.
        *plan.callbacks,
        schedule_callback(config, monitor, mode),
        BestModel(best[monitor] if best else None),
        EpochHistory(rows_before),
    ]
    if config["train"]["patience"]:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                                       patience=config["train"]["patience"]))
    # After every callback whose counters the resume state keeps, which it restores and saves.
    callbacks.append(CommitEpoch())
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0))
    return callbacks
