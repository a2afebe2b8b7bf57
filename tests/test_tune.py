"""coughclf tune: search spaces, the cross-validated objective, every algorithm, resume after SIGKILL,
chief/worker processes, and a best config that `coughclf train` accepts."""

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from train_data import write_config, write_tone_cache

REPO = Path(__file__).resolve().parents[1]
COUGHCLF = [sys.executable, "-m", "coughclf"]
# Two tuned values, one fixed; the tone cache trains in one epoch of two batches.
SPACE = '''
[tune.space]
"optimizer.lr" = { min = 1e-4, max = 1e-2, sampling = "log" }
"model.dropout" = [0.0, 0.2]
"train.batch_size" = 8
"optimizer.weight_decay" = false
'''


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return write_tone_cache(tmp_path_factory.mktemp("tones") / "cache", clips_per_class=8)


def tune_config(path, cache, tune_table, *, epochs=1):
    """The tone experiment with ``[tune]`` = ``tune_table`` (TOML lines) and :data:`SPACE`."""
    return write_config(path, cache, epochs=epochs, extra=f"\n[tune]\n{tune_table}\n{SPACE}")


def read_trials(directory):
    with open(Path(directory) / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def log_events(directory):
    lines = (Path(directory) / "executions.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


def ended_trials(directory):
    return [event["trial"] for event in log_events(directory) if event["event"] == "end"]


# --- search space (no training) ----------------------------------------------------------------

def _load(tmp_path, body, model="cough_small_cnn"):
    from coughclf.config import load_config

    path = tmp_path / "space.toml"
    path.write_text(f'[data]\ndataset = "folder"\ncache = "x"\n[model]\nname = "{model}"\n{body}')
    return load_config(path)


def test_default_space_follows_the_model_family_and_the_augmentation_switched_on(tmp_path):
    from coughclf.tune import default_space, search_space, tune_settings

    attention = default_space(_load(tmp_path, '[augment]\npitch_shift = { max_semitones = 2.0 }\n'
                                              'time_inversion = false', model="cough_crnn_attention"))
    assert attention["optimizer.lr"] == {"min": 1e-5, "max": 1e-2, "sampling": "log"}
    assert attention["model.dropout"] == [0.0, 0.1, 0.2] and attention["model.num_heads"] == [1, 2, 4]
    assert attention["optimizer.weight_decay"] == [0.0, 1e-5]
    assert "augment.pitch_shift.max_semitones" in attention
    assert not any(path.startswith("augment.time_inversion") for path in attention)  # switched off
    assert "model.num_heads" not in default_space(_load(tmp_path, ""))  # the small CNN has no attention
    assert "model.dropout" not in default_space(_load(tmp_path, "", model="kws_cnn"))  # nor kws_cnn dropout

    config = _load(tmp_path, '[tune]\n[tune.space]\n"optimizer.weight_decay" = false\n"model.dropout" = [0.5]')
    space = search_space(config, tune_settings(config))
    assert "optimizer.weight_decay" not in space and space["model.dropout"] == [0.5]


def test_settings_infer_objective_direction_and_folds(tmp_path):
    from coughclf.tune import tune_settings

    settings = tune_settings(_load(tmp_path, '[train]\nmonitor = "val_auc"\n[split]\nmethod = "fold"'))
    assert (settings["objective"], settings["direction"], settings["cv_folds"]) == ("val_auc", "max", "predefined")
    settings = tune_settings(_load(tmp_path, '[tune]\nobjective = "val_loss"\ncv = 3'))
    assert (settings["direction"], settings["cv"], settings["cv_folds"]) == ("min", 3, "kfold")


def test_space_declares_kerastuner_types_and_trial_configs_apply_dotted_paths(tmp_path):
    from keras_tuner.engine.hyperparameters import Choice, Fixed, Float, Int

    from coughclf.tune import apply_hyperparameters, declare_space

    hyperparameters = declare_space({"optimizer.lr": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
                                     "optimizer.weight_decay": [0, 1e-5], "train.epochs": {"min": 2, "max": 6},
                                     "train.batch_size": 16}, "space.toml")
    kinds = {hp.name: type(hp) for hp in hyperparameters.space}
    assert kinds == {"optimizer.lr": Float, "optimizer.weight_decay": Choice, "train.epochs": Int,
                     "train.batch_size": Fixed}
    assert hyperparameters.space[1].values == [0.0, 1e-5]  # one type, as KerasTuner needs

    config = _load(tmp_path, "[augment]\npitch_shift = false")
    trial = apply_hyperparameters(config, {"optimizer.lr": 3e-4, "augment.pitch_shift.max_semitones": 1.5,
                                           "tuner/epochs": 4}, epochs=4)
    assert trial["optimizer"]["lr"] == 3e-4 and trial["train"]["epochs"] == 4
    assert trial["augment"]["pitch_shift"] == {"max_semitones": 1.5}  # tuning a strength switches it on
    assert config["optimizer"]["lr"] == 1e-3  # the base config is left as it was


@pytest.mark.parametrize("body, message", [
    ('[tune]\nmax_trails = 3', "unknown key 'tune.max_trails'"),
    ('[tune]\ntuner = "grid"', "tune.tuner = 'grid' is not one of"),
    ('[tune]\n[tune.space]\n"lr" = [1e-3]', "'lr' is not a dotted config key"),
    ('[tune]\n[tune.space]\n"optimizer.lr" = { min = 0.0, max = 1.0, sampling = "log" }', "min must be positive"),
])
def test_bad_tune_tables_fail_with_one_line_naming_the_file(tmp_path, body, message):
    from coughclf.errors import CoughclfError
    from coughclf.tune import declare_space, search_space, tune_settings

    with pytest.raises(CoughclfError, match=message) as caught:  # at load time or when the space is declared
        config = _load(tmp_path, body)
        declare_space(search_space(config, tune_settings(config)), config.source)
    assert "\n" not in str(caught.value)


def test_a_bad_config_key_in_the_space_fails_before_any_training(tones, tmp_path):
    from coughclf.config import load_config
    from coughclf.errors import CoughclfError
    from coughclf.tune import make_tuner

    path = tune_config(tmp_path / "bad.toml", tones, "max_trials = 1")
    with open(path, "a") as handle:
        handle.write('"optimizer.learning_rate" = [1e-3]\n')
    with pytest.raises(CoughclfError, match="optimizer.learning_rate"):
        make_tuner(load_config(path), tmp_path / "search")
    assert not (tmp_path / "search" / "search").exists()


def test_a_search_folder_refuses_another_config_but_takes_another_budget(tones, tmp_path):
    from coughclf.config import load_config
    from coughclf.errors import CoughclfError
    from coughclf.tune import make_tuner

    config_path = tune_config(tmp_path / "claimed.toml", tones, "max_trials = 1")
    directory = tmp_path / "search"
    make_tuner(load_config(config_path), directory)
    make_tuner(load_config(config_path, ["tune.max_trials=5"]), directory)  # a larger budget continues
    with pytest.raises(CoughclfError, match="different config"):
        make_tuner(load_config(config_path, ["tune.epochs=3"]), directory)  # trials would not compare


def test_worker_and_chief_options_set_kerastuner_variables():
    from coughclf.commands.tune import set_role
    from coughclf.errors import CoughclfError

    def args(**given):
        return argparse.Namespace(**{"chief": False, "worker": False, "oracle": None, "tuner_id": None, **given})

    environ = {}
    set_role(args(chief=True, oracle="10.0.0.1:8000"), environ)
    assert environ == {"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
                       "KERASTUNER_TUNER_ID": "chief"}
    set_role(args(worker=True, tuner_id="gpu1"), environ)  # the address may come from the environment
    assert environ["KERASTUNER_TUNER_ID"] == "gpu1"
    with pytest.raises(CoughclfError, match="HOST:PORT"):
        set_role(args(worker=True), {})
    with pytest.raises(CoughclfError, match="add --chief or --worker"):
        set_role(args(oracle="h:1"), {})


# --- searches -------------------------------------------------------------------------------------

@pytest.mark.slow  # a 3-fold search: ~21 s loaded; the hyperband search below runs the CV loop by default
def test_cross_validated_objective_is_the_mean_and_std_of_the_folds_best_epochs(tones, tmp_path):
    """Random search, 2 trials x 2 folds; every number checked against the fold runs' own histories."""
    from coughclf.config import load_config
    from coughclf.tune import tune

    config_path = tune_config(tmp_path / "cv.toml", tones, 'tuner = "random"\nobjective = "val_loss"\n'
                                                           'max_trials = 2\ncv = 2\nseed = 1', epochs=2)
    directory = tmp_path / "search"
    best = tune(load_config(config_path), directory)

    folds = json.loads((directory / "folds.json").read_text())
    assert len(folds) == 2
    tested = [clip for fold in folds for clip in fold["test"]]
    assert len(tested) == len(set(tested)) == 16  # every clip held out exactly once
    rows = read_trials(directory)
    assert [row["trial"] for row in rows] == ["0", "1"] and {row["status"] for row in rows} == {"COMPLETED"}
    for row in rows:
        trial_dir = directory / "search" / f"trial_{row['trial']}"
        fold_best = []
        for index, fold in enumerate(folds):
            run = trial_dir / "execution-0" / f"fold-{index}"
            assert json.loads((run / "split.json").read_text()) == fold  # the same folds in every trial
            assert f"lr = {float(row['optimizer.lr'])!r}" in (run / "config.toml").read_text()
            history = json.loads((run / "history.json").read_text())
            assert len(history) == 2
            fold_best.append(min(epoch["val_loss"] for epoch in history))  # val_loss: lower is better
        assert float(row["val_loss"]) == pytest.approx(np.mean(fold_best))
        assert float(row["val_loss_std"]) == pytest.approx(np.std(fold_best, ddof=1))
        metrics = json.loads((trial_dir / "trial.json").read_text())["metrics"]["metrics"]
        for index, value in enumerate(fold_best):
            assert metrics[f"val_loss_fold{index}"]["observations"][0]["value"][0] == pytest.approx(value)

    best_row = min(rows, key=lambda row: float(row["val_loss"]))
    assert best["trial"] == best_row["trial"] and best["value"] == pytest.approx(float(best_row["val_loss"]))
    assert best["completed"] == 2 and best["folds"] == 2
    assert (directory / "objective.png").stat().st_size > 10_000

    from coughclf.config import load_config as load_again

    tuned = load_again(directory / "best.toml")  # what `coughclf train` does with it
    assert tuned["optimizer"]["lr"] == pytest.approx(float(best_row["optimizer.lr"]))
    assert tuned["model"]["dropout"] == pytest.approx(float(best_row["model.dropout"]))
    from coughclf.config import SCHEMA

    # no search left in it: [tune] at its defaults, as the schema fills in every table
    assert tuned["name"] == "tones_tuned"
    assert tuned["tune"] == {name: key.default for name, key in SCHEMA["tune"].items()}
    assert sorted(ended_trials(directory)) == ["0", "1"]


# Bayesian search with the default compared: ~16 s loaded
@pytest.mark.parametrize("algorithm, compare", [pytest.param("bayesian", True, marks=pytest.mark.slow),
                                                ("hyperband", False)])
def test_each_algorithm_runs_its_trials_through_the_cross_validated_loop(tones, tmp_path, algorithm, compare):
    from coughclf.config import load_config
    from coughclf.tune import compare_with_default, make_tuner, write_results

    settings = {"bayesian": 'max_trials = 2\ninitial_points = 1',  # the second trial comes from the GP
                "hyperband": 'max_epochs = 2\nfactor = 3'}[algorithm]  # one bracket: 2 trials of 2 epochs
    config_path = tune_config(tmp_path / f"{algorithm}.toml", tones, f'tuner = "{algorithm}"\n{settings}')
    directory = tmp_path / "search"
    tuner = make_tuner(load_config(config_path), directory)
    tuner.search()
    best = write_results(tuner)

    oracle = type(tuner.oracle).__name__
    assert oracle == {"bayesian": "BayesianOptimizationOracle", "hyperband": "HyperbandOracle"}[algorithm]
    rows = read_trials(directory)
    assert len(rows) == 2 and {row["status"] for row in rows} == {"COMPLETED"}
    trial_ids = [row["trial"] for row in rows]  # Hyperband pads ids to its own trial budget: "0000"
    assert sorted(ended_trials(directory)) == trial_ids and best["trial"] in trial_ids
    for row in rows:
        history = json.loads((directory / "search" / f"trial_{row['trial']}" / "execution-0" / "fold-0"
                              / "history.json").read_text())
        expected_epochs = 2 if algorithm == "hyperband" else 1  # Hyperband's budget is train.epochs
        assert int(row["epochs"]) == len(history) == expected_epochs
    if not compare:
        return
    report = compare_with_default(tuner, best)
    default_run = directory / "default" / "execution-0" / "fold-0"
    assert "lr = 0.003" in (default_run / "config.toml").read_text()  # the config as written
    default_history = json.loads((default_run / "history.json").read_text())
    assert report["default"]["value"] == pytest.approx(max(row["val_accuracy"] for row in default_history))
    assert report["improvement"] == pytest.approx(report["value"] - report["default"]["value"])
    tuned_test = json.loads((directory / "search" / f"trial_{best['trial']}" / "execution-0" / "fold-0"
                             / "metrics.json").read_text())
    assert report["test"]["accuracy"]["mean"] == pytest.approx(tuned_test["accuracy"])
    with open(directory / "comparison.csv", newline="") as handle:
        compared = {(row["config"], row["metric"]) for row in csv.DictReader(handle)}
    assert {("default", "test accuracy"), ("tuned", "test auc")} <= compared
    assert json.loads((directory / "best.json").read_text())["default"] == json.loads(json.dumps(report["default"]))


@pytest.mark.slow  # a killed search process and its continuation: ~20 s loaded
def test_a_search_killed_with_sigkill_continues_without_losing_or_repeating_trials(tones, tmp_path):
    config_path = tune_config(tmp_path / "resume.toml", tones, 'max_trials = 2')
    directory = tmp_path / "search"
    command = [*COUGHCLF, "tune", str(config_path), "--directory", str(directory)]
    search = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    log = directory / "executions.log"
    while not (log.exists() and any(e["event"] == "start" and e["trial"] == "1" for e in log_events(directory))):
        assert search.poll() is None, search.stderr.read()[-2000:]
        assert time.time() < deadline, "trial 1 never started"
        time.sleep(0.2)
    search.send_signal(signal.SIGKILL)  # trial 0 done, trial 1 running
    assert search.wait(timeout=30) == -signal.SIGKILL
    assert ended_trials(directory) == ["0"]
    first_model = directory / "search" / "trial_0" / "execution-0" / "fold-0" / "best.keras"
    first_model_time = first_model.stat().st_mtime_ns

    from coughclf.config import load_config
    from coughclf.tune import tune

    # Started again on the same folder, with the budget raised by one trial.
    best = tune(load_config(config_path, ["tune.max_trials=3"]), directory)
    assert sorted(ended_trials(directory)) == ["0", "1", "2"]  # each trial finished exactly once
    assert first_model.stat().st_mtime_ns == first_model_time  # trial 0 was not trained again
    rows = read_trials(directory)
    assert [row["trial"] for row in rows] == ["0", "1", "2"]
    assert {row["status"] for row in rows} == {"COMPLETED"} and best["completed"] == 3


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # three search processes: ~36 s loaded
def test_a_chief_and_two_workers_run_every_trial_once_and_the_chief_reports_the_best(tones, tmp_path):
    config_path = tune_config(tmp_path / "distributed.toml", tones, 'max_trials = 3')
    directory = tmp_path / "search"
    command = [*COUGHCLF, "tune", str(config_path), "--directory", str(directory),
               "--oracle", f"127.0.0.1:{_free_port()}"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KERASTUNER_")}
    # Three TensorFlow processes on two cores: one thread pool each, so they do not fight over the cores.
    environment.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    chief = subprocess.Popen([*command, "--chief"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=environment)
    workers = [subprocess.Popen([*command, "--worker", "--tuner-id", name], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=environment) for name in ("w1", "w2")]
    try:
        for worker in workers:
            _, errors = worker.communicate(timeout=900)
            assert worker.returncode == 0, errors[-2000:]
        output, errors = chief.communicate(timeout=300)
        assert chief.returncode == 0, errors[-2000:]
    finally:
        for process in (chief, *workers):
            if process.poll() is None:
                process.kill()

    events = log_events(directory)
    ended = [event["trial"] for event in events if event["event"] == "end"]
    assert sorted(ended) == ["0", "1", "2"]  # the budget, each trial once
    assert {event["tuner"] for event in events} <= {"w1", "w2"}  # the chief only serves
    rows = read_trials(directory)
    assert {row["status"] for row in rows} == {"COMPLETED"} and len(rows) == 3
    best = json.loads((directory / "best.json").read_text())
    best_row = max(rows, key=lambda row: float(row["val_accuracy"]))
    assert best["value"] == pytest.approx(float(best_row["val_accuracy"]))
    assert f"best trial {best['trial']}: val_accuracy" in output
