"""The fit of a run, shared by every task: seed, split.json, resume, callbacks, best row, training.json.

A task (:mod:`coughclf.tasks`) only says what is particular to it through its
``plan_fit(config, run_dir, cache, split, strategy)``, which returns a :class:`FitPlan`:
the compiled model, its training and validation data, the value to monitor and any
callbacks of its own (which run before the checkpoint and history callbacks, so they may
add values to the epoch's logs, as CTC's CER does). :func:`fit_run` does the rest the
same way for every task, so a resumed CTC run and a resumed classifier stop, keep their
best model and write their history alike.
"""

import math
import time
from pathlib import Path
from typing import NamedTuple

from coughclf.errors import CoughclfError
from coughclf.files import read_json, write_csv, write_json
from coughclf.inputs import open_data, run_split
from coughclf.optim import schedule_callback, weight_averaging_callbacks
from coughclf.runs import best_row, history_rows, is_chief, resumed_rows


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
    verbose: object = "auto"


def fit_run(config, run_dir, strategy, plan_fit, *, split=None, callbacks=()):
    """Train in an already claimed ``run_dir`` (skipped if it finished); returns training.json's dict.

    ``plan_fit`` is the task's (:mod:`coughclf.tasks`); ``split`` overrides [split] (cross-validation);
    ``callbacks`` run after the run's own.
    """
    import keras
    import tensorflow as tf

    run_dir = Path(run_dir)
    if (run_dir / "training.json").exists():
        print(f"{run_dir} has finished training; evaluating only")
        return read_json(run_dir / "training.json")
    keras.utils.set_random_seed(config["train"]["seed"])
    cache = open_data(config)
    split = run_split(config, cache, run_dir, split)
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
    steps = config["train"]["steps_per_epoch"]
    if steps:
        train_data = train_data.repeat()
    resumed_at, rows_before = resumed_rows(run_dir)
    if resumed_at:
        print(f"resuming {run_dir} at epoch {resumed_at + 1}")
    started = time.time()
    history = plan.model.fit(
        train_data, validation_data=validation_data, epochs=config["train"]["epochs"], steps_per_epoch=steps,
        class_weight=plan.class_weight, verbose=plan.verbose, shuffle=False,
        callbacks=[*run_callbacks(config, run_dir, plan, rows_before, is_chief(strategy)), *callbacks])
    rows = history_rows(run_dir)
    best = best_row(rows, plan.monitor, plan.mode)
    if not (run_dir / "best.keras").exists():
        raise CoughclfError(f"training in {run_dir} never improved {plan.monitor} (NaN loss?); lower "
                            "optimizer.lr, set optimizer.clipnorm or check the data")
    summary = {
        "epochs_run": len(rows),
        "epochs_this_session": len(history.epoch),
        "resumed_at_epoch": resumed_at,
        "stopped_early": len(rows) < config["train"]["epochs"],
        # history.json holds a NaN loss as null
        "terminated_on_nan": any(row.get("loss") is None or math.isnan(row["loss"]) for row in rows),
        "monitor": plan.monitor,
        "best_epoch": best["epoch"] if best else None,
        "best_value": best[plan.monitor] if best else None,
        "seconds_this_session": round(time.time() - started, 1),
        "parameters": int(sum(math.prod(w.shape) for w in plan.model.trainable_weights)),
        **plan.summary,
        "cache": str(cache.root),
    }
    write_json(run_dir / "training.json", summary)
    return summary


def run_callbacks(config, run_dir, plan, rows_before, chief):
    """The run's callbacks: restore, NaN stop, averaging, the task's, schedule, best.keras, history, early stop."""
    import keras

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
            write_json(Path(run_dir) / "history.json", self.rows)
            write_csv(Path(run_dir) / "history.csv", self.rows)

    class BestModel(keras.callbacks.ModelCheckpoint):
        """ModelCheckpoint writing best.keras atomically, so a kill mid-save leaves the previous best."""

        def __init__(self, target, **kwargs):
            super().__init__(str(Path(target).with_name("best.partial.keras")), **kwargs)
            self.target = Path(target)

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            partial = Path(self.filepath)
            if partial.exists():
                partial.replace(self.target)

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping that starts from the best value and patience count of the epochs already run."""

        def __init__(self, restored_best, restored_wait, **kwargs):
            super().__init__(**kwargs)
            self.restored_best, self.restored_wait = restored_best, restored_wait

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.restored_best is not None:
                self.best, self.wait = self.restored_best, self.restored_wait

    monitor, mode = plan.monitor, plan.mode
    best = best_row(rows_before, monitor, mode)
    best_value = best[monitor] if best else None
    callbacks = [
        # First, so that on resume the epoch is restored before any other callback starts.
        keras.callbacks.BackupAndRestore(str(Path(run_dir) / "backup"), double_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
        *weight_averaging_callbacks(config),
        # Before the schedule, the checkpoint and the history, which read the values they add to the logs.
        *plan.callbacks,
        schedule_callback(config, monitor, mode),
        BestModel(Path(run_dir) / "best.keras", monitor=monitor, mode=mode, save_best_only=True,
                  initial_value_threshold=best_value),
        EpochHistory(rows_before),
    ]
    if config["train"]["patience"]:
        wait = (rows_before[-1]["epoch"] - best["epoch"]) if best else 0
        callbacks.append(ResumableEarlyStopping(best_value, wait, monitor=monitor, mode=mode,
                                                patience=config["train"]["patience"]))
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(Path(run_dir) / "logs"), write_graph=False,
                                                     profile_batch=0))
    return callbacks
