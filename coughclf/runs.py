"""Run folders: where a run's files go, who may write them, and how a killed run resumes.

A run folder is claimed by one process at a time (:func:`claim_run_dir`: config.toml
written or checked, an advisory lock held until the process exits). Its resume state
(:mod:`coughclf.resume_state`) says where a killed run resumes; the epochs already run
are the rows of ``history.json`` (:func:`resumed_rows`), from which the best-checkpoint
state comes back (:func:`best_row`). The strategies (:func:`make_strategy`) decide which
process is the chief that writes the run.
"""

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from coughclf.config import config_from_dict, dump_config, dumps_config
from coughclf.console import report
from coughclf.errors import CoughclfError
from coughclf.files import folder_name_problem, read_json
from coughclf.resume_state import RESUME_STATE, read_resume_point

STRATEGIES = ("default", "mirrored", "multiworker", "data_parallel")
# keras.distribution.initialize reads these; any of them set means several hosts (jax.distributed).
JAX_CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                         "KERAS_DISTRIBUTION_PROCESS_ID")
RUNS_ROOT = Path("saved_models")
_MAXIMISED = ("acc", "auc", "precision", "recall", "f1")


def monitor_mode(config):
    """``"min"`` or ``"max"`` for [train].monitor (``auto``: max for accuracy/AUC/F1-like names)."""
    mode = config["train"]["mode"]
    if mode != "auto":
        return mode
    return "max" if any(part in config["train"]["monitor"] for part in _MAXIMISED) else "min"


# --- resume bookkeeping -------------------------------------------------------------------------

def history_rows(run_dir):
    """The rows of the run's history.json (one per epoch run), or ``[]``."""
    path = Path(run_dir) / "history.json"
    return read_json(path) if path.exists() else []


def resumed_rows(run_dir):
    """``(where the run resumes, the history rows of the epochs before it)``: a
    :class:`coughclf.resume_state.ResumePoint`, or ``(None, [])`` for a run that has not finished an epoch."""
    run_dir = Path(run_dir)
    if (run_dir / "backup").is_dir() and not (run_dir / RESUME_STATE).exists():
        raise CoughclfError(f"{run_dir / 'backup'} was written by an older coughclf, which kept no exact resume "
                            "state; finish the run with that version, or train again in a new --run-dir")
    point = read_resume_point(run_dir / RESUME_STATE)
    if point is None:
        return None, []
    return point, [row for row in history_rows(run_dir) if row["epoch"] < point.epoch]


PENDING_BEST = "best.pending-{epoch:04d}.keras"  # the epoch counting from 1


def settle_pending_best(run_dir, resumed_at):
    """Promote the best-model candidate of the last committed epoch to best.keras; delete the others.

    A candidate ``best.pending-NNNN.keras`` is written when epoch NNNN (counting from 1)
    improves, and renamed to best.keras once the epoch's resume state is written. A run killed
    in between resumes at epoch ``resumed_at`` (counting from 0): a candidate of an epoch up
    to it was committed, a later one belongs to an epoch that runs again.
    """
    pending = sorted(Path(run_dir).glob(PENDING_BEST.replace("{epoch:04d}", "[0-9]*")))
    committed = [path for path in pending if int(path.stem.rsplit("-", 1)[1]) <= resumed_at]
    if committed:
        committed[-1].replace(Path(run_dir) / "best.keras")
    for path in pending:
        if path.exists():
            path.unlink()


def best_row(rows, monitor, mode):
    """The history row with the best ``monitor`` value (``mode`` ``"min"`` or ``"max"``), or None."""
    seen = [row for row in rows if row.get(monitor) is not None]
    if not seen:
        return None
    return (max if mode == "max" else min)(seen, key=lambda row: row[monitor])


# --- strategies ---------------------------------------------------------------------------------

def make_strategy(name):
    """A ``tf.distribute`` strategy: default (one device), mirrored (all local GPUs) or multiworker;
    or ``data_parallel``, Keras' JAX data parallelism (:class:`DataParallel`).

    ``multiworker`` reads the cluster from the ``TF_CONFIG`` environment variable; create
    it before any other TensorFlow work in the process.
    """
    if name == "data_parallel":
        return DataParallel()
    import tensorflow as tf

    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise CoughclfError("--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                                "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                                "\"task\": {\"type\": \"worker\", \"index\": 0}}' on the first machine")
        return _multi_worker_strategy()
    raise CoughclfError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _multi_worker_strategy():
    """MultiWorkerMirroredStrategy mended for the two ways Keras 3's fit calls ``strategy.reduce``.

    ``Model.fit`` reduces a whole ``(inputs, labels)`` batch in one call (to build the
    model symbolically) and reduces the scalar metrics of each step with ``axis=0``;
    MultiWorkerMirroredStrategy reduces one tensor at a time and has no axis 0 on a
    scalar (keras-team/keras#20585). Reducing per tensor, scalars over replicas only,
    is what both calls mean.
    """
    import tensorflow as tf

    class NestedReduceStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def reduce_one(tensor):
                local = (self.experimental_local_results(tensor)[0]
                         if isinstance(tensor, tf.distribute.DistributedValues) else tensor)
                return parent.reduce(reduce_op, tensor, axis if local.shape.rank else None)

            return tf.nest.map_structure(reduce_one, value)

    return NestedReduceStrategy()


class DataParallel:
    """``keras.distribution.DataParallel`` over every device of every host, as a strategy for :func:`training_run`.

    The model's variables are replicated on each device and every batch is split across them
    along its first axis (the batch size is global); gradients are averaged, so the replicas
    keep the same weights. Several hosts join through ``jax.distributed``, which
    ``keras.distribution.initialize`` starts from the environment variables
    :data:`JAX_CLUSTER_VARIABLES` (docs/training.md, "Several machines"); process 0 is the chief.
    The distribution is set for the whole process (``fit`` shards its batches by it), so
    :meth:`scope` has nothing to add.
    """

    def __init__(self):
        import keras

        if keras.backend.backend() != "jax":
            raise CoughclfError(f"--strategy data_parallel is Keras' JAX distribution but Keras runs on "
                                f"{keras.backend.backend()}: set KERAS_BACKEND=jax (with TensorFlow, use "
                                "--strategy mirrored)")
        if any(name in os.environ for name in JAX_CLUSTER_VARIABLES):
            keras.distribution.initialize()
        self.devices = keras.distribution.list_devices()
        self.distribution = keras.distribution.DataParallel(devices=self.devices)
        keras.distribution.set_distribution(self.distribution)

    def scope(self):
        return contextlib.nullcontext()

    @property
    def chief(self):
        import jax

        return jax.process_index() == 0


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster (or of several JAX hosts)."""
    if isinstance(strategy, DataParallel):
        return strategy.chief
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief



# --- run folders -------------------------------------------------------------------------------

def new_run_dir(config):
    return default_run_folder(config, f"-{time.strftime('%Y%m%d-%H%M%S')}")


def default_run_folder(config, suffix):
    """``saved_models/{name}{suffix}``, the folder of a run, CV or search given no folder: always inside
    saved_models/, since ``name`` is one folder name (checked when the config is loaded, and here for a
    config built without it)."""
    problem = folder_name_problem(config["name"])
    if problem:
        raise CoughclfError(f"{getattr(config, 'source', 'the config')}: name = {config['name']!r} {problem}; "
                            "set another name")
    return RUNS_ROOT / f"{config['name']}{suffix}"


def claim_run_dir(config, run_dir, *, retake_unstarted=False):
    """Create ``run_dir`` with config.toml, or check that a resumed run uses the same config.

    With ``retake_unstarted`` (a training run's folder), a folder whose earlier run failed before
    finishing an epoch (:func:`has_progress`) takes the new config instead: there is nothing of
    the old one to resume.

    The folder stays locked to this process until it exits (an advisory ``flock`` on
    ``run_dir/.lock``, which the system releases even after a SIGKILL, so a killed run resumes):
    a second process started on the same folder fails at once instead of training the same
    epochs beside the first and resuming from its half-written records.
    """
    import tomllib

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _lock_run_dir(run_dir)
    saved = run_dir / "config.toml"
    if saved.exists():
        # Both sides with today's defaults filled in: a key added to the schema since the run
        # started, at its default, is not a different config.
        previous = config_from_dict(tomllib.loads(saved.read_text(encoding="utf-8")), str(saved), check_names=False)
        if tomllib.loads(dumps_config(previous)) == tomllib.loads(dumps_config(config)):
            return run_dir
        if not retake_unstarted or has_progress(run_dir):
            raise CoughclfError(f"{run_dir} holds a run of a different config ({saved}); resume it with the "
                                "same config and --set values, or start it in another folder")
        report(f"{run_dir}: its earlier run stopped before finishing an epoch; starting it again with this config")
        for derived in ("split.json", "metadata.json"):  # decided from the earlier config
            (run_dir / derived).unlink(missing_ok=True)
    dump_config(config, saved)
    return run_dir


def has_progress(run_dir):
    """Whether a run folder holds training worth resuming: a finished epoch's records or resume state."""
    run_dir = Path(run_dir)
    return any((run_dir / name).exists() for name in ("history.json", RESUME_STATE, "backup", "best.keras",
                                                      "training.json"))


_RUN_DIR_LOCKS = {}  # resolved folder -> the open lock file, held until the process exits


def _lock_run_dir(run_dir):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): folders are not locked
        return
    key = run_dir.resolve()
    if key in _RUN_DIR_LOCKS:
        return
    handle = open(key / ".lock", "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise CoughclfError(f"{run_dir} is in use by {holder}; wait for it to finish (or stop it), or give "
                            "this run another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}\n")
    handle.flush()
    _RUN_DIR_LOCKS[key] = handle


class TrainingRun(NamedTuple):
    """One process's part of a training run (see :func:`training_run`)."""

    strategy: object  # the tf.distribute.Strategy to build, compile and fit in
    run_dir: Path     # the run folder the chief writes
    work_dir: Path    # the claimed folder this process trains in (run_dir on the chief)
    chief: bool


@contextlib.contextmanager
def training_run(config, run_dir=None, strategy=None):
    """Set up this process's part of training ``config``; yields a :class:`TrainingRun`.

    ``strategy`` is a ``tf.distribute.Strategy`` or its name (:func:`make_strategy`);
    ``run_dir`` defaults to a new ``saved_models/{name}-{timestamp}``. The chief trains
    in the run folder itself; the other workers of a multi-worker cluster must write
    their checkpoints somewhere too, but only the chief may write the run, so they
    train in a temporary folder that is removed on exit.
    """
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    chief = is_chief(strategy)
    final_dir = Path(run_dir) if run_dir else new_run_dir(config)
    work_dir = final_dir if chief else Path(tempfile.mkdtemp(prefix="coughclf-worker-"))
    try:
        yield TrainingRun(strategy, final_dir, claim_run_dir(config, work_dir, retake_unstarted=True), chief)
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)


def run_config(run_dir):
    """The config a run folder was trained with (its config.toml through ``load_config``)."""
    from coughclf.config import load_config

    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").exists():
        raise CoughclfError(f"{run_dir} is not a run folder (no config.toml); pass a folder that "
                            "'coughclf train' wrote")
    return load_config(run_dir / "config.toml")


def best_model_path(run_dir):
    """``run_dir/best.keras``; an error naming how to resume when training has not saved one yet."""
    path = Path(run_dir) / "best.keras"
    if not path.exists():
        raise CoughclfError(f"{run_dir} has no best.keras: its training has not finished an epoch; resume it "
                            "with 'coughclf train CONFIG --run-dir RUN'")
    return path


def load_best_model(run_dir):
    """The model of ``run_dir/best.keras``, with errors naming the file and how to mend it."""
    from coughclf.model_files import load_model_file

    return load_model_file(best_model_path(run_dir),
                           remedy=f"delete it and train again into {run_dir} (training.json too, if present)")


def evaluation_tag(split, data):
    """The suffix of an evaluation's files: "" for the run's own test split, else ``-{split}[-{cache}]``."""
    return "" if split == "test" and data is None else f"-{split}" + (f"-{Path(data).name}" if data else "")
