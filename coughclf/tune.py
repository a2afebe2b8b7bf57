"""``coughclf tune``: KerasTuner search over an experiment config, each trial cross-validated.

A trial is the experiment config with the trial's hyperparameters written over it: every
hyperparameter is named by the dotted path of the config key it sets
(``optimizer.lr``, ``model.dropout``, ``train.batch_size``,
``augment.pitch_shift.max_semitones``). The [tune] table of the config::

    [tune]
    tuner = "bayesian"          # random | bayesian | hyperband
    objective = "val_auc"       # any metric in the runs' history; default [train].monitor
    direction = "auto"          # min | max | auto (max for accuracy/AUC/F1-like names)
    max_trials = 10             # random and bayesian
    executions_per_trial = 1    # trainings per fold (seeds train.seed, +1, ...), averaged
    cv = 5                      # folds per trial; 1: the config's own [split]
    cv_folds = "kfold"          # or "predefined" (the dataset's folds); default from [split].method
    epochs = 10                 # train.epochs while tuning (the best config keeps [train].epochs)
    default_space = true        # start from the model family's space (DEFAULT_SPACES)
    seed = 0                    # the tuner's sampling seed; default [train].seed
    initial_points = 3          # bayesian: random trials before the Gaussian process
    max_epochs = 20             # hyperband: the largest budget (default [train].epochs)
    factor = 3                  # hyperband: the budget ratio between rounds
    hyperband_iterations = 1
    compare_default = true      # after the search, train the untuned config on the same folds and seeds

    [tune.space]
    "optimizer.lr" = { min = 1e-5, max = 1e-2, sampling = "log" }   # Float (Int if both ints)
    "model.dropout" = [0.0, 0.1, 0.2]                               # Choice
    "train.batch_size" = 32                                         # Fixed
    "optimizer.weight_decay" = false                                # drop from the default space

Each trial trains every fold (:func:`coughclf.cv.fold_splits`, the same folds for every
trial) with :func:`coughclf.train.train`; a fold's value is the best epoch's value of the
objective in its ``history.json`` (KerasTuner's convention for a history); the trial
reports the mean over folds as the objective and the sample standard deviation as
``{objective}_std``. The loop over folds lives in the tuner's ``run_trial``
(:class:`CrossValidatedTrials`, mixed into RandomSearch, BayesianOptimization and
Hyperband), so every search algorithm sees one cross-validated number per trial.
Hyperband's budgets set ``train.epochs`` of the trial; each trial trains from scratch.

The search folder (``saved_models/{name}-tune`` unless given) holds ``config.toml``,
``folds.json``, KerasTuner's ``search/`` (``oracle.json``, ``trial_*/trial.json`` and the
trial's run folders ``trial_*/execution-{e}/fold-{i}/``), ``executions.log`` (one JSON
line when a tuner starts or ends a trial) and the results: ``trials.csv``,
``objective.png``, ``best.json`` and ``best.toml`` (the config with the best
hyperparameters, for ``coughclf train`` / ``coughclf cv``). With ``compare_default``, the
config as given is trained on the same folds with the same seeds (``default/``) and
both it and the best trial are evaluated on every fold's test part, which no trial's
objective saw: ``best.json`` then holds both, and ``comparison.csv`` lists them. Started again on the same
folder, a search continues: finished trials are kept, a trial cut off is run again and
resumes its unfinished fold from its resume state; ``max_trials`` and
``compare_default`` may change between starts (a larger budget extends the search).
"""

import json
import os
import socket
import time
from pathlib import Path

import keras_tuner
# keras_tuner.engine.hyperparameters is KerasTuner's exported (public) path of the hyperparameter types.
from keras_tuner.engine.hyperparameters import Fixed

from coughclf.config import SCHEMA, config_from_dict, dump_config
from coughclf.console import is_quiet, report
from coughclf.errors import CoughclfError
from coughclf.files import read_json, write_csv, write_json
from coughclf.inputs import open_data
from coughclf.runs import claim_run_dir, default_run_folder, monitor_mode
from coughclf.train import train
from coughclf.tune_presets import AUGMENT_STRENGTHS, DEFAULT_SPACES

PROJECT = "search"
BUDGET_PREFIX = "tuner/"  # Hyperband's own entries (tuner/epochs, tuner/round, ...): not config keys


class TuningError(CoughclfError, keras_tuner.errors.FatalError):
    """A mistake in the search itself (an objective no run logs): stops the search instead of each trial."""


# --- settings and search space -----------------------------------------------------------------

def tune_settings(config):
    """The [tune] table (checked by ``load_config``) with the defaults that follow from the rest of the
    config filled in: ``objective``, ``direction``, ``seed`` and ``cv_folds``."""
    settings = dict(config["tune"])
    where = config.source
    if settings["objective"] is None:
        settings["objective"] = "val_cer" if config["task"] == "ctc" else config["train"]["monitor"]
    if settings["direction"] == "auto":
        settings["direction"] = monitor_mode({"train": {"mode": "auto", "monitor": settings["objective"]}})
    if settings["seed"] is None:
        settings["seed"] = config["train"]["seed"]
    if settings["cv_folds"] is None:
        settings["cv_folds"] = "predefined" if config["split"]["method"] == "fold" else "kfold"
    if config["task"] == "ctc" and (settings["cv"] > 1 or settings["cv_folds"] == "predefined"):
        raise CoughclfError(f"{where}: CTC training uses the config's own split; set tune.cv = 1 "
                            "(cross-validated tuning is for classifiers)")
    return settings


def model_family(model_name):
    """The family of a registered model: the module its builder is defined in (``cough``, ``kws``...)."""
    from coughclf import models

    return models.spec(model_name).builder.__module__.rsplit(".", 1)[-1]


def default_space(config):
    """The family's default space for ``config``: model options its builder takes, augmentation on."""
    from coughclf import models

    accepted = models.accepted_options(config["model"]["name"])
    space = {path: entry for path, entry in DEFAULT_SPACES.get(model_family(config["model"]["name"]), {}).items()
             if not path.startswith("model.") or path.split(".", 1)[1] in accepted}
    for layer, options in config["augment"].items():
        if layer in AUGMENT_STRENGTHS and options not in (None, False):
            option, values = AUGMENT_STRENGTHS[layer]
            space[f"augment.{layer}.{option}"] = values
    return space


def search_space(config, settings):
    """``{dotted path: entry}``: the default space (unless switched off) updated by [tune.space]."""
    space = default_space(config) if settings["default_space"] else {}
    for path, entry in settings["space"].items():
        if entry is False:
            space.pop(path, None)
        else:
            space[path] = entry
    if not space:
        raise CoughclfError(f"{config.source}: the search space is empty; add entries under [tune.space], "
                            "e.g. \"optimizer.lr\" = { min = 1e-5, max = 1e-2, sampling = \"log\" }")
    return space


def _choice_values(values, path, where):
    if not values:
        raise CoughclfError(f"{where}: tune.space.{path} is an empty list; give the values to try")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numbers and any(isinstance(v, float) for v in values):
        return [float(v) for v in values]  # KerasTuner wants one type: [0, 1e-5] are floats
    if len({type(v) for v in values}) > 1:
        raise CoughclfError(f"{where}: tune.space.{path} mixes types {values}; use values of one type")
    return list(values)


def declare_space(space, where):
    """A :class:`keras_tuner.HyperParameters` with one hyperparameter per dotted path."""
    hyperparameters = keras_tuner.HyperParameters()
    for path, entry in space.items():
        if BUDGET_PREFIX in path or path.split(".")[0] not in SCHEMA or "." not in path:
            raise CoughclfError(f"{where}: tune.space key {path!r} is not a dotted config key such as "
                                "'optimizer.lr' or 'model.dropout'")
        if isinstance(entry, list):
            hyperparameters.Choice(path, _choice_values(entry, path, where))
        elif isinstance(entry, dict):
            unknown = set(entry) - {"min", "max", "sampling", "step"}
            if unknown or not {"min", "max"} <= set(entry):
                raise CoughclfError(f"{where}: tune.space.{path} = {entry} needs min and max (and optionally "
                                    "sampling = 'linear'|'log', step); or give a list of values")
            sampling = entry.get("sampling", "linear")
            if sampling not in ("linear", "log"):
                raise CoughclfError(f"{where}: tune.space.{path}.sampling = {sampling!r}; use 'linear' or 'log'")
            if sampling == "log" and entry["min"] <= 0:
                raise CoughclfError(f"{where}: tune.space.{path} is log-sampled, so min must be positive")
            integers = all(isinstance(entry.get(k, 1), int) for k in ("min", "max", "step"))
            make = hyperparameters.Int if integers else hyperparameters.Float
            make(path, entry["min"], entry["max"], step=entry.get("step"), sampling=sampling)
        else:
            hyperparameters.Fixed(path, entry)
    return hyperparameters


def apply_hyperparameters(config, values, *, epochs=None):
    """``config`` with every dotted-path value written over it (and ``train.epochs``), without [tune].

    A value under an augmentation that is off (``false``) switches it on with that option.
    """
    raw = json.loads(json.dumps(config))
    for path, value in values.items():
        if path.startswith(BUDGET_PREFIX):
            continue
        *parents, leaf = path.split(".")
        table = raw
        for part in parents:
            if not isinstance(table.get(part), dict):
                table[part] = {}
            table = table[part]
        table[leaf] = value
    if epochs is not None:
        raw["train"]["epochs"] = int(epochs)
    raw["tune"] = {}  # a trial is an experiment; its runs resume whatever budget the search is given
    return config_from_dict(raw, config.source)


def check_space(config, hyperparameters):
    """Build the config of the space's default values, so a bad key fails before any training."""
    trial_config = apply_hyperparameters(config, {hp.name: hp.default for hp in hyperparameters.space})
    if trial_config["augment"]:
        from coughclf.layers.augment import build_augmentation
        from coughclf.mixing import mixing_from_augment

        build_augmentation(mixing_from_augment(trial_config["augment"], config.source)[1])
    return trial_config


# --- the cross-validated trial -------------------------------------------------------------------

def best_logged_value(run_dir, objective, direction):
    """The best value of ``objective`` over the epochs in ``run_dir/history.json``."""
    rows = read_json(Path(run_dir) / "history.json")
    values = [row[objective] for row in rows if row.get(objective) is not None]
    if not values:
        logged = sorted({key for row in rows for key in row} - {"epoch"})
        raise TuningError(f"{run_dir}/history.json has no {objective!r}; set tune.objective to a logged "
                          f"metric: {', '.join(logged)}")
    return max(values) if direction == "max" else min(values)


def fold_objective(fold_values):
    """``(mean, sample std)`` over folds, as ``coughclf cv`` summarises (std 0 for one fold)."""
    from coughclf.metrics import summarize_folds

    summary = summarize_folds([{"objective": value} for value in fold_values])["objective"]
    return summary["mean"], summary["std"]


class CrossValidatedTrials:
    """Mixin over a KerasTuner tuner whose ``run_trial`` trains the trial's config on every fold.

    Args:
        experiment: the base :class:`coughclf.config.ExperimentConfig`.
        settings: :func:`tune_settings` of it.
        folds: ``[{"train", "validation", "test"}, ...]`` clip ids, the same for every trial.
        strategy: the ``tf.distribute`` strategy each training runs in.
        log_path: ``executions.log``, where each trial's start and end are appended.
    """

    def __init__(self, *, experiment, settings, folds, strategy, log_path, **kwargs):
        self.experiment, self.settings, self.folds = experiment, settings, folds
        self.strategy, self.log_path = strategy, Path(log_path)
        super().__init__(**kwargs)

    def run_trial(self, trial, *args, **kwargs):
        """Train every fold ``executions_per_trial`` times; ``{objective, objective_std, seconds, ...}``."""
        values = trial.hyperparameters.values
        objective = self.settings["objective"]
        epochs = values.get(f"{BUDGET_PREFIX}epochs", self.settings["epochs"])
        config = apply_hyperparameters(self.experiment, values, epochs=epochs)
        self._log("start", trial.trial_id)
        started = time.time()
        fold_values = self.cross_validate(config, Path(self.get_trial_dir(trial.trial_id)), f"trial {trial.trial_id}")
        mean, spread = fold_objective(fold_values)
        seconds = time.time() - started
        self._log("end", trial.trial_id, objective=mean, seconds=round(seconds, 1))
        metrics = {objective: mean, f"{objective}_std": spread, "seconds": seconds}
        metrics.update({f"{objective}_fold{index}": value for index, value in enumerate(fold_values)})
        return metrics

    def cross_validate(self, config, root, label):
        """Train ``config`` on every fold under ``root``; the objective of each fold (mean over executions)."""
        objective, direction = self.settings["objective"], self.settings["direction"]
        fold_values = []
        for index, split in enumerate(self.folds):
            executions = []
            for execution, run_dir in enumerate(self.run_dirs(root, index)):
                run_config = config.copy()
                run_config["train"]["seed"] = config["train"]["seed"] + execution
                report(f"{label}, fold {index + 1}/{len(self.folds)}, execution "
                      f"{execution + 1}/{self.executions_per_trial}: {run_dir}")
                try:
                    train(run_config, run_dir, self.strategy, split=split, evaluate_after=False)
                except TuningError:
                    raise
                except CoughclfError as error:  # these values cannot train: fail the trial, keep searching
                    raise keras_tuner.errors.FailedTrialError(str(error)) from error
                executions.append(best_logged_value(run_dir, objective, direction))
            fold_values.append(sum(executions) / len(executions))
        return fold_values

    def run_dirs(self, root, fold):
        """The run folders of one fold under ``root``, one per execution."""
        return [Path(root) / f"execution-{execution}" / f"fold-{fold}" for execution in range(self.executions_per_trial)]

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if not self._is_worker():
            write_results(self)

    def _log(self, event, trial_id, **details):
        line = json.dumps({"event": event, "trial": trial_id, "tuner": self.tuner_id,
                           "host": socket.gethostname(), "time": round(time.time(), 3), **details}) + "\n"
        # One O_APPEND write per line: lines of tuners sharing the folder never interleave.
        handle = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(handle, line.encode())
        finally:
            os.close(handle)


class CrossValidatedRandomSearch(CrossValidatedTrials, keras_tuner.RandomSearch):
    """Random search with cross-validated trials."""


class CrossValidatedBayesianOptimization(CrossValidatedTrials, keras_tuner.BayesianOptimization):
    """Bayesian optimisation (Gaussian process) with cross-validated trials."""


class CrossValidatedHyperband(CrossValidatedTrials, keras_tuner.Hyperband):
    """Hyperband with cross-validated trials; a trial's budget is its ``train.epochs``."""


TUNERS = {"random": CrossValidatedRandomSearch, "bayesian": CrossValidatedBayesianOptimization,
          "hyperband": CrossValidatedHyperband}


# --- the search ----------------------------------------------------------------------------------

# [tune] keys that only set how long the search runs: a search may continue with other values.
BUDGET_KEYS = ("max_trials", "compare_default", "max_retries_per_trial", "max_consecutive_failed_trials")


def search_identity(config):
    """The config a search folder is claimed with: ``config`` without the [tune] budget keys.

    A search started again with a larger (or smaller) ``max_trials`` continues; any other
    change, which would make old and new trials incomparable, is refused.
    """
    identity = config.copy()
    # At their defaults rather than left out: a config read back fills every key in.
    identity["tune"].update({key: SCHEMA["tune"][key].default for key in BUDGET_KEYS})
    return identity


def default_directory(config):
    return default_run_folder(config, "-tune")


def is_tuning_worker():
    """True in a worker of a distributed search (KERASTUNER_ORACLE_IP set, the id not a chief's)."""
    from keras_tuner.src.distribute import utils

    return utils.has_chief_oracle() and not utils.is_chief_oracle()


def search_folds(config, settings, cache):
    """The folds every trial trains on: k-fold, the dataset's folds, or the config's one split."""
    from coughclf.cv import fold_splits
    from coughclf.inputs import split_clips

    if settings["cv"] == 1 and settings["cv_folds"] == "kfold":
        return [split_clips(config, cache)]
    folded = config.copy()
    folded["split"]["method"] = "fold" if settings["cv_folds"] == "predefined" else "kfold"
    folded["split"]["k"] = settings["cv"]
    return fold_splits(folded, cache)


def make_tuner(config, directory, strategy=None, *, overwrite=False):
    """The cross-validated KerasTuner tuner of ``config`` working in ``directory``.

    The chief of a distributed search, or a search on one machine, owns ``directory``:
    it writes config.toml (a different config there is an error) and folds.json.
    Workers compute the same folds from the same cache.
    """
    import shutil

    from coughclf.runs import make_strategy

    settings = tune_settings(config)
    space = search_space(config, settings)
    hyperparameters = declare_space(space, config.source)
    check_space(config, hyperparameters)
    directory = Path(directory)
    worker = is_tuning_worker()
    if overwrite and not worker and directory.exists():
        shutil.rmtree(directory)
    if not worker:
        claim_run_dir(search_identity(config), directory)
    directory.mkdir(parents=True, exist_ok=True)
    cache = open_data(config)
    folds_path = directory / "folds.json"
    folds = read_json(folds_path) if folds_path.exists() else search_folds(config, settings, cache)
    if not worker:
        write_json(folds_path, folds)
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    objective = keras_tuner.Objective(settings["objective"], settings["direction"])
    options = {"objective": objective, "seed": settings["seed"], "hyperparameters": hyperparameters,
               "tune_new_entries": False, "max_retries_per_trial": settings["max_retries_per_trial"],
               "max_consecutive_failed_trials": settings["max_consecutive_failed_trials"]}
    if settings["tuner"] == "hyperband":
        options.update(max_epochs=settings["max_epochs"] or settings["epochs"] or config["train"]["epochs"],
                       factor=settings["factor"], hyperband_iterations=settings["hyperband_iterations"])
    else:
        options["max_trials"] = settings["max_trials"]
    if settings["tuner"] == "bayesian":
        options["num_initial_points"] = settings["initial_points"]
    return TUNERS[settings["tuner"]](
        experiment=config, settings=settings, folds=folds, strategy=strategy,
        log_path=directory / "executions.log", directory=str(directory), project_name=PROJECT,
        executions_per_trial=settings["executions_per_trial"], overwrite=False, **options)


def tune(config, directory=None, strategy=None, *, overwrite=False):
    """Run (or continue) the search of ``config``; returns ``best.json``'s content, None on a worker.

    Args:
        config: an :class:`coughclf.config.ExperimentConfig` with a [tune] table.
        directory: the search folder (default ``saved_models/{name}-tune``); a folder of an
            unfinished search continues it.
        strategy: the ``tf.distribute`` strategy of each training (as for ``train``).
        overwrite: delete the folder's previous search first.

    Distributed: set ``KERASTUNER_TUNER_ID`` (``chief`` or a unique worker id),
    ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (``coughclf tune --chief /
    --worker`` do it); the chief serves the trials and writes the results.

    Example::

        from coughclf.config import load_config
        from coughclf.tune import tune
        best = tune(load_config("experiments/kws/tune_kws_fsdd.toml"))
        print(best["hyperparameters"], best["objective"])
    """
    directory = Path(directory) if directory else default_directory(config)
    tuner = make_tuner(config, directory, strategy, overwrite=overwrite)
    tuner.search(**({"verbose": 0} if is_quiet() else {}))  # KerasTuner's trial reports
    if is_tuning_worker():
        return None
    report = write_results(tuner)
    if report is not None and tuner.settings["compare_default"]:
        report = compare_with_default(tuner, report)
    return report


# --- results -------------------------------------------------------------------------------------

def trial_rows(tuner):
    """One dict per trial: id, status, objective, std, seconds, epochs, then the hyperparameters."""
    objective = tuner.settings["objective"]
    rows = []
    # Numeric order: KerasTuner pads ids to the budget's width, so an extended search mixes "3" and "04".
    for trial_id, trial in sorted(tuner.oracle.trials.items(), key=lambda item: int(item[0])):
        metrics = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}
        values = trial.hyperparameters.values
        row = {"trial": trial_id, "status": trial.status, objective: metrics.get(objective),
               f"{objective}_std": metrics.get(f"{objective}_std"), "seconds": metrics.get("seconds"),
               "epochs": values.get(f"{BUDGET_PREFIX}epochs", tuner.settings["epochs"]
                                    or tuner.experiment["train"]["epochs"])}
        row.update({name: value for name, value in values.items() if not name.startswith(BUDGET_PREFIX)})
        rows.append(row)
    return rows


def best_trial(tuner):
    """The best completed trial (None before any has completed)."""
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED" and t.score is not None]
    if not completed:
        return None
    pick = max if tuner.settings["direction"] == "max" else min
    return pick(completed, key=lambda t: t.score)


def best_config(tuner, trial):
    """The base config with the trial's hyperparameters (without [tune]), renamed ``{name}_tuned``."""
    config = apply_hyperparameters(tuner.experiment, trial.hyperparameters.values)
    objective = tuner.settings["objective"]
    config["name"] = f"{tuner.experiment['name']}_tuned"
    config["description"] = (f"{tuner.experiment['name']} with the hyperparameters of trial {trial.trial_id} "
                             f"of coughclf tune ({tuner.settings['tuner']}, {objective} = {trial.score:.4g})")
    return config


def write_results(tuner):
    """Write trials.csv, objective.png, best.json and best.toml next to the search; return best.json's dict."""
    directory = Path(tuner.directory)
    rows = trial_rows(tuner)
    if rows:
        write_csv(directory / "trials.csv", rows)
    best = best_trial(tuner)
    if best is None:
        return None
    objective = tuner.settings["objective"]
    plot_objective(rows, tuner.oracle.hyperparameters, objective, directory / "objective.png",
                   best=best.trial_id, direction=tuner.settings["direction"])
    dump_config(best_config(tuner, best), directory / "best.toml")
    report = {"trial": best.trial_id, "objective": objective, "direction": tuner.settings["direction"],
              "value": best.score, "std": best.metrics.get_last_value(f"{objective}_std"),
              "folds": len(tuner.folds), "hyperparameters": {k: v for k, v in best.hyperparameters.values.items()
                                                             if not k.startswith(BUDGET_PREFIX)},
              "trials": len(rows), "completed": sum(row["status"] == "COMPLETED" for row in rows),
              "config": str(directory / "best.toml")}
    write_json(directory / "best.json", report)
    return report


def plot_objective(rows, hyperparameters, objective, path, *, best=None, direction="max"):
    """One panel per tuned hyperparameter: each trial's objective (± std over folds) against its value."""
    from coughclf.plots import load_pyplot, save_figure

    plt = load_pyplot()
    tuned = [hp for hp in hyperparameters.space
             if not hp.name.startswith(BUDGET_PREFIX) and not isinstance(hp, Fixed)]
    done = [row for row in rows if row.get(objective) is not None]
    figure, axes = plt.subplots(1, max(len(tuned), 1), figsize=(3.8 * max(len(tuned), 1), 3.4), squeeze=False,
                                layout="constrained")
    for axis, hp in zip(axes[0], tuned):
        values = [row.get(hp.name) for row in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        positions = values if numeric else [str(v) for v in values]
        errors = [row.get(f"{objective}_std") or 0.0 for row in done]
        scores = [row[objective] for row in done]
        axis.errorbar(positions, scores, yerr=errors, fmt="o", alpha=0.7, capsize=3)
        for position, score, row in zip(positions, scores, done):
            if row["trial"] == best:
                axis.plot([position], [score], marker="*", markersize=16, color="tab:red", label="best")
        positive = numeric and values and min(values) > 0
        if positive and (getattr(hp, "sampling", None) == "log" or max(values) / min(values) >= 100):
            axis.set_xscale("log")
        axis.set_xlabel(hp.name)
        axis.set_ylabel(f"{objective} (mean ± std over folds)")
        axis.grid(alpha=0.3)
    figure.suptitle(f"{objective} per trial ({'higher' if direction == 'max' else 'lower'} is better)")
    return save_figure(figure, path)


# Test-set metrics compared between the default and the tuned config, when the evaluation has them.
TEST_METRICS = ("accuracy", "balanced_accuracy", "auc", "macro_f1", "cer", "wer")


def test_fold_metrics(run_dirs):
    """Mean and std over runs of :data:`TEST_METRICS` on each run's test split (evaluated once)."""
    from coughclf.evaluate import evaluate
    from coughclf.metrics import summarize_folds

    results = []
    for run_dir in run_dirs:
        saved = Path(run_dir) / "metrics.json"
        results.append(read_json(saved) if saved.exists() else evaluate(run_dir, make_plots=False))
    summary = summarize_folds([{name: result[name] for name in TEST_METRICS if isinstance(result.get(name), float)}
                               for result in results])
    return {name: {"mean": entry["mean"], "std": entry["std"]} for name, entry in summary.items()}


def compare_with_default(tuner, report):
    """Train the untuned config on the search's folds and seeds; add it and both test results to ``report``.

    The default is trained as a trial would be (``tune.epochs``, every execution) in
    ``default/``; the best trial's runs are evaluated on their test folds as they are.
    Written to ``best.json`` and ``comparison.csv``.
    """
    directory = Path(tuner.directory)
    default = apply_hyperparameters(tuner.experiment, {}, epochs=tuner.settings["epochs"])
    default_values = tuner.cross_validate(default, directory / "default", "default config")
    default_mean, default_std = fold_objective(default_values)
    best_root = Path(tuner.get_trial_dir(report["trial"]))
    folds = range(len(tuner.folds))
    sign = 1 if report["direction"] == "max" else -1
    report["default"] = {"value": default_mean, "std": default_std,
                         "test": test_fold_metrics([d for i in folds for d in tuner.run_dirs(directory / "default", i)])}
    report["test"] = test_fold_metrics([d for i in folds for d in tuner.run_dirs(best_root, i)])
    report["improvement"] = sign * (report["value"] - default_mean)
    write_json(directory / "best.json", report)
    lines = []
    for name, entry in (("default", report["default"]), ("tuned", report)):
        lines.append([name, f"{report['objective']} (validation, objective)", entry["value"], entry["std"]])
        lines += [[name, f"test {metric}", summary["mean"], summary["std"]]
                  for metric, summary in entry["test"].items()]
    write_csv(directory / "comparison.csv", lines, columns=["config", "metric", "mean", "std"])
    return report
