"""``coughclf train``: one experiment config → one run folder with the best model and its report.

A run folder (``saved_models/{name}-{timestamp}/`` unless given) holds::

    config.toml          the config actually used (defaults and --set overrides filled in)
    split.json           the clip ids of train / validation / test
    metadata.json        how metadata columns were encoded (models with a metadata input)
    best.keras           the model of the best epoch by [train].monitor (the model alone: no optimizer state)
    history.csv/.json    one row per epoch (loss, metrics, learning rate)
    logs/                TensorBoard logs
    resume.weights.h5    while training runs: the state a killed run resumes from (coughclf.resume_state)
    training.json        written when fit has finished: epochs run, best epoch and value
    metrics.json, plots/ the evaluation on the test split (coughclf.evaluate)

Run the same command again with ``--run-dir`` on a run that was killed and it resumes
from the last finished epoch as the run it was: the weights, optimiser state, random
generators and callback counters come back from ``resume.weights.h5``, the data draws the
batches of the resumed epochs (:mod:`coughclf.epoch_keys`) and the best-checkpoint state
comes from ``history.json``, so the resumed run ends with the weights of an uninterrupted one.

This module only strings the steps together; each lives in its own module:
:mod:`coughclf.runs` (run folders, locking, resume bookkeeping, strategies),
:mod:`coughclf.inputs` (the data, split and metadata encoding of a run),
:mod:`coughclf.fitting` (the fit every task shares: callbacks, best epoch, training.json),
:mod:`coughclf.optim` (optimiser and schedule) and :mod:`coughclf.tasks`, which names the
module of each task (:mod:`coughclf.classification`, :mod:`coughclf.speech`).
"""

from pathlib import Path

from coughclf import tasks
from coughclf.config import check_data
from coughclf.console import report
from coughclf.files import read_json
from coughclf.fitting import fit_run
from coughclf.runs import training_run


def train(config, run_dir=None, strategy=None, *, split=None, callbacks=(), evaluate_after=True):
    """Train the experiment ``config`` and write its run folder; returns the run folder.

    Args:
        config: an :class:`coughclf.config.ExperimentConfig` (``load_config``).
        run_dir: the run folder; a folder of an unfinished run resumes it. Default
            ``saved_models/{name}-{timestamp}``.
        strategy: a ``tf.distribute.Strategy`` or its name (``"default"``, ``"mirrored"``,
            ``"multiworker"``); the model is built and compiled in its scope and the
            batch size is the global batch. Only the chief writes ``run_dir``.
        split: ``{"train", "validation", "test"}`` clip ids (cross-validation); default [split].
        callbacks: extra Keras callbacks, run after the run's own.
        evaluate_after: evaluate the best model on the test split (metrics.json, plots).

    Example::

        from coughclf.config import load_config
        from coughclf.train import train
        run = train(load_config("experiments/kws/kws_cnn.toml", ["train.epochs=3"]))
    """
    import keras

    task = tasks.get(config["task"])
    check_data(config)  # missing data or weights fail before a run folder is claimed
    if config["distill"]["teacher"] is not None:  # a teacher that cannot be read fails before the run folder
        from coughclf.distillation.teachers import check_teacher

        check_teacher(config, [split] if split else ())
    with training_run(config, run_dir, strategy) as run:
        fit_run(config, run.work_dir, run.strategy, task.plan_fit, split=split, callbacks=callbacks)
    keras.backend.clear_session()
    if run.chief and evaluate_after:
        if read_json(Path(run.run_dir) / "split.json")["test"]:
            task.evaluate(run.run_dir)  # metrics.json: `coughclf train` prints it, `coughclf cv` collects it
        else:
            report(f"{run.run_dir}: no test clips (split.test = 0); not evaluated")
    return run.run_dir
