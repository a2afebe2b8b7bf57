"""A run's records under hostile conditions (issue 15): kills at bad moments, NaN losses, damaged
model files, full disks, relative paths, and what train and evaluate print."""

import json
from pathlib import Path

import pytest

from conftest import tone, write_audio
from train_data import write_config, write_tone_cache

from coughclf.config import config_from_dict, load_config
from coughclf.errors import CoughclfError

REPO = Path(__file__).resolve().parents[1]
TINY_CTC_MODEL = {"name": "deepspeech2_lite", "conv_filters": 8, "conv_kernel": 5, "rnn_units": 8, "rnn_layers": 1,
                  "activation": "tanh"}
TINY_CTC_FRONTEND = {"n_fft": 256, "win_length": 200, "hop_length": 80, "n_mels": 16}


@pytest.fixture(scope="module")
def tone_cache(tmp_path_factory):
    return write_tone_cache(tmp_path_factory.mktemp("cache") / "tones")


def untrained_run(config, cache, run_dir, build):
    """A run folder as training leaves it, with the untrained model ``build(config, cache)`` as best.keras:
    evaluation can be tested without the minutes a fit takes."""
    from coughclf.inputs import run_split
    from coughclf.runs import claim_run_dir

    claim_run_dir(config, run_dir)
    run_split(config, cache, run_dir)
    build(config, cache).save(run_dir / "best.keras")
    return run_dir


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """An untrained CTC run on a yesno layout (eight utterances, official split: four tested)."""
    from coughclf.inputs import open_data
    from coughclf.speech import build_ctc_model

    root = tmp_path_factory.mktemp("speech")
    for index, name in enumerate(["0_1", "1_1", "0_0", "1_0", "0_1_1", "1_0_0", "0_0_1", "1_1_0"]):
        write_audio(root / "yesno" / "waves_yesno" / f"{name}.wav",
                    tone(seconds=1.0, sample_rate=8000, frequency=300.0 + 200 * name.count("1"), seed=index), 8000)
    config = config_from_dict({
        "name": "tiny_ctc", "data": {"dataset": "yesno", "data_dir": str(root / "yesno"), "sample_rate": 8000,
                                     "cache": str(root / "cache")},
        "split": {"method": "official", "val": 0.0}, "model": dict(TINY_CTC_MODEL), "frontend": TINY_CTC_FRONTEND,
        "train": {"epochs": 1, "batch_size": 4, "patience": 0}, "ctc": {"beam_width": 2, "examples": 1}})
    return untrained_run(config, open_data(config), root / "run",
                         lambda config, cache: build_ctc_model(config, cache.sample_rate))


# --- item 1: evaluate on a speech run ------------------------------------------------------------

def test_cli_evaluate_of_a_speech_run_prints_its_summary_and_json_alone(speech_run, capsys):
    from coughclf.cli import main

    assert main(["evaluate", str(speech_run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # nothing but the JSON on stdout
    assert printed["task"] == "ctc" and printed["utterances"] == 4
    assert printed["cer"] == json.loads((speech_run / "metrics.json").read_text())["cer"]
    assert main(["evaluate", str(speech_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("deepspeech2_lite on 4 test utterances")
    assert lines[1].split()[0] == "beam_search" and f"CER {printed['cer']:.2%}" in lines[1]


# --- item 17: damaged and untrusted model files, a full disk --------------------------------------

def _copy_run(run, destination):
    import shutil

    shutil.copytree(run, destination, ignore=shutil.ignore_patterns(".lock"))
    return destination


def test_a_truncated_best_keras_is_named_as_corrupt_with_the_fix(speech_run, tmp_path, capsys):
    from coughclf.cli import main
    from coughclf.evaluate import evaluate

    run = _copy_run(speech_run, tmp_path / "run")
    model = run / "best.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(CoughclfError, match=rf"{model} is corrupt or truncated .*train again into {run}"):
        evaluate(run)
    assert main(["evaluate", str(run)]) == 2
    error = capsys.readouterr().err
    assert "corrupt or truncated" in error and "File not found" not in error and "unexpected" not in error


def test_a_lambda_layer_is_refused_with_a_message_naming_the_file(tmp_path):
    import keras

    from coughclf.model_files import load_model_file

    inputs = keras.Input((4,))
    path = tmp_path / "untrusted.keras"
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(path)
    with pytest.raises(CoughclfError, match=rf"{path} holds a Lambda layer, whose Python code would run"):
        load_model_file(path)


def _edited_keras(tmp_path, name, edit):
    """A tiny saved model whose config.json ``edit(dense layer's entry)`` changed, as an attacker would."""
    import zipfile

    import keras

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs)).save(tmp_path / "honest.keras")
    with zipfile.ZipFile(tmp_path / "honest.keras") as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "dense"))
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / name, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return tmp_path / name


def _function(module, name):
    return {"module": module, "class_name": "function", "config": name, "registered_name": "function"}


@pytest.mark.parametrize("edit, reason", [
    (lambda layer: layer.update(module="os", class_name="system", registered_name=None),
     r"is refused: it asks for os\.system, which is no registered Keras or coughclf layer or function"),
    (lambda layer: layer["config"].update(activation=_function("os", "system")),
     r"is refused: it asks for os\.system"),
    (lambda layer: layer["config"].update(activation=_function("keras.config", "enable_unsafe_deserialization")),
     r"is refused: Cannot deserialize `keras\.config\.enable_unsafe_deserialization` because it is not a modeling"),
    (lambda layer: layer["config"].update(activation={"module": "builtins", "class_name": "__lambda__",
                                                      "config": {"code": "", "defaults": None, "closure": None},
                                                      "registered_name": None}),
     r"is refused: Requested the deserialization of a Python lambda"),
    (lambda layer: layer["config"].update(units="many"),
     r"is corrupt \(Received an invalid value for `units`.*units=many\); copy the file again"),
])
def test_every_model_file_that_safe_mode_does_not_load_is_one_line_naming_it_and_why(tmp_path, edit, reason, capsys):
    """Issue 25: os.system and enable_unsafe_deserialization gadgets ended in an "unexpected error" Keras dump."""
    from coughclf.cli import main
    from coughclf.model_files import load_model_file

    path = _edited_keras(tmp_path, "hostile.keras", edit)
    with pytest.raises(CoughclfError, match=rf"^{path} {reason}") as raised:
        load_model_file(path)
    assert "\n" not in str(raised.value) and "Full object config" not in str(raised.value)
    assert main(["predict", str(path), str(write_audio(tmp_path / "clip.wav", tone(seconds=0.5), 16000))]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"coughclf predict: error: {path} ")
    assert "unexpected" not in error
    test_a_lambda_layer_is_refused_with_a_message_naming_the_file(tmp_path)  # safe mode is still on


def test_a_full_disk_keeps_the_previous_file_and_says_what_to_do(tmp_path, monkeypatch):
    import errno

    from coughclf.files import write_json

    target = write_json(tmp_path / "history.json", [{"epoch": 0}])
    original = Path.write_text

    def full_disk(self, *args, **kwargs):
        original(self, "[{\"ep", encoding="utf-8")  # the disk fills up part way
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(CoughclfError, match=rf"no space left on the device writing {target}; free some space"):
        write_json(target, [{"epoch": 0}, {"epoch": 1}])
    monkeypatch.undo()
    assert json.loads(target.read_text()) == [{"epoch": 0}]
    assert [path.name for path in tmp_path.iterdir()] == ["history.json"]


def test_the_cli_reports_a_full_disk_in_a_model_save_as_one_line(monkeypatch, capsys):
    import errno

    from coughclf import cli

    def fails_on_a_full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", "run/best.partial.keras")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults()
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(_run=fails_on_a_full_disk)
    assert cli.main(["datasets"]) == 2
    assert capsys.readouterr().err.strip() == (
        "coughclf datasets: error: no space left on the device writing run/best.partial.keras; free some space "
        "(or write to another folder) and run the command again: a run resumes where it stopped")


# --- items 3 and 4: an epoch's records are one step; a NaN loss ends a run cleanly ---------------

def _train_in_subprocess(config, run_dir, prelude):
    """Train ``config`` into ``run_dir`` in a child process after running ``prelude`` (which may kill it)."""
    import subprocess
    import sys

    script = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO / "tests")!r})
import keras
from coughclf.config import load_config
from coughclf.train import train
{prelude}
train(load_config({str(config)!r}), {str(run_dir)!r}, evaluate_after=False)
"""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a killed child process and its resume: ~40 s loaded; test_resume covers resume
def test_a_kill_right_after_the_resume_state_keeps_the_epochs_history_row_and_best_model(tone_cache, tmp_path):
    """SIGKILL just after the epoch-2 resume state is written: the resumed run has every epoch's row, and its
    best.keras is the best epoch of its history."""
    import signal

    from coughclf.train import train

    config = write_config(tmp_path / "tones.toml", tone_cache, epochs=4)
    run_dir = tmp_path / "run"
    killed = _train_in_subprocess(config, run_dir, """
from coughclf import fitting
save = fitting.write_resume_state
def save_then_die(path, model, *, epoch, **kwargs):
    save(path, model, epoch=epoch, **kwargs)
    if epoch == 2:
        os.kill(os.getpid(), signal.SIGKILL)
fitting.write_resume_state = save_then_die
""")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    train(load_config(config), run_dir, evaluate_after=False)
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["epochs_run"] == 4 and summary["resumed_at_epoch"] == 2 and not summary["stopped_early"]
    best = max(history, key=lambda row: row["val_accuracy"])  # the first of equal values, as Keras keeps it
    assert summary["best_epoch"] == best["epoch"]
    assert not list(run_dir.glob("best.pending-*"))


def test_a_kill_before_the_resume_state_runs_the_epoch_again_and_drops_its_candidate(tone_cache, tmp_path):
    from coughclf.runs import settle_pending_best

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for epoch, content in ((1, b"committed"), (3, b"not committed")):
        (run_dir / f"best.pending-{epoch:04d}.keras").write_bytes(content)
    settle_pending_best(run_dir, resumed_at=2)
    assert (run_dir / "best.keras").read_bytes() == b"committed"
    assert sorted(path.name for path in run_dir.iterdir()) == ["best.keras"]


def test_a_loss_that_becomes_nan_ends_the_run_with_its_last_good_model_and_says_why(tone_cache, tmp_path, capsys):
    import keras
    import numpy as np

    from coughclf.train import train

    class PoisonTheWeights(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for weights in self.model.trainable_weights:
                    weights.assign(np.full(weights.shape, np.nan, "float32"))

    config = load_config(write_config(tmp_path / "tones.toml", tone_cache, epochs=3))
    run = train(config, tmp_path / "run", callbacks=[PoisonTheWeights()])
    summary = json.loads((run / "training.json").read_text())
    assert summary["terminated_on_nan"] and not summary["stopped_early"] and summary["best_epoch"] == 0
    assert "the loss became NaN in epoch 2; best.keras is the model of epoch 1" in summary["stopped_because"]
    assert "training stopped: the loss became NaN in epoch 2" in capsys.readouterr().err  # a warning
    assert np.isfinite(np.load(run / "predictions.npz")["probabilities"]).all()


def test_a_nan_learning_rate_keeps_no_model_and_says_why(tone_cache, tmp_path):
    from coughclf.train import train

    config = load_config(write_config(tmp_path / "tones.toml", tone_cache, epochs=2))
    config["optimizer"]["lr"] = float("nan")  # a config made in Python: load_config refuses it in a file
    with pytest.raises(CoughclfError, match=r"kept no model: the loss became NaN in epoch 1; lower optimizer.lr"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "best.keras").exists()


# --- items 15, 18 and 21: the command line's output, and a run that holds wherever it is read from ---

@pytest.fixture(scope="module")
def cli_run(tone_cache, tmp_path_factory):
    """``coughclf train`` run as a user runs it, its output piped, with the cache named relative to the
    working folder (``prepared/tones``)."""
    import shutil
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("workdir")
    shutil.copytree(tone_cache, workdir / "prepared" / "tones")
    write_config(workdir / "tones.toml", "prepared/tones", epochs=2)
    result = subprocess.run([sys.executable, "-m", "coughclf", "train", "tones.toml", "--run-dir", "run"],
                            cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_training_through_a_pipe_prints_progress_on_stderr_one_line_per_epoch_and_no_library_noise(cli_run):
    from coughclf.console import is_native_log

    workdir, result = cli_run
    assert not any(code in result.stderr for code in ("\r", "\x08", "\x1b["))
    epoch_lines = [line for line in result.stderr.splitlines() if "val_loss" in line]
    assert len(epoch_lines) == 2 and "Epoch 2/2" in result.stderr  # one line per epoch, no bar
    split = json.loads((workdir / "run" / "split.json").read_text())
    assert (f"split: train {len(split['train'])} clips (4 groups), validation {len(split['validation'])} clips "
            f"(2 groups), test {len(split['test'])} clips (2 groups)") in result.stderr  # issue 15 item 12
    noise = [line for line in result.stderr.splitlines() if is_native_log(line.encode()) or "cuInit" in line]
    assert noise == []


def test_training_prints_its_test_metrics_and_run_folder_alone_on_stdout(cli_run):
    from coughclf.evaluate import summary_lines

    workdir, result = cli_run
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert result.stdout.splitlines() == [*summary_lines(metrics), "run folder: run"]
    assert f"accuracy           {metrics['accuracy']:.4f}" in result.stdout
    assert "Epoch" not in result.stdout and "split:" not in result.stdout


def test_a_run_records_its_cache_absolutely_and_evaluates_from_another_folder(cli_run, tmp_path):
    import subprocess
    import sys

    workdir, _ = cli_run
    recorded = json.loads((workdir / "run" / "training.json").read_text())["cache"]
    assert recorded == str((workdir / "prepared" / "tones").resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "coughclf", "evaluate", str(workdir / "run"), "--json",
                             "--quiet"], cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["cache"] == recorded
    assert list(elsewhere.iterdir()) == []  # nothing prepared here


def test_progress_is_a_bar_on_a_terminal_a_line_per_epoch_elsewhere_and_nothing_when_quiet(monkeypatch):
    import sys

    from coughclf import console

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert console.fit_verbose() == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert console.fit_verbose() == 2 and console.fit_verbose(preferred=1) == 1
    console.set_quiet(True)
    try:
        assert console.fit_verbose() == 0 and console.fit_verbose(preferred=2) == 0
    finally:
        console.set_quiet(False)


@pytest.mark.parametrize("command", ["train", "cv", "tune", "evaluate", "prepare", "predict", "demo"])
def test_every_long_command_takes_quiet(command):
    from coughclf.cli import build_parser

    required = {"train": ["c.toml"], "cv": ["c.toml"], "tune": ["c.toml"], "evaluate": ["run"],
                "prepare": ["fsdd", "--data-dir", "d", "--out", "o"], "predict": ["m.keras", "a.wav"], "demo": []}
    assert build_parser().parse_args([command, *required[command], "--quiet"]).quiet


def test_native_log_lines_are_dropped_and_everything_else_passes(capfd):
    import os

    from coughclf.console import native_logs_filtered

    with native_logs_filtered():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"E0000 00:00:1795681214.642448    2496 cuda_platform.cc:52] failed call to cuInit: (303)\n"
                    b"a real message\n 45%|####5     | 9/20\r")
        os.write(2, b"I0000 00:00:1795681096.033653    1433 port.cc:153] oneDNN custom operations are on.\n"
                    b"another one\n")
    assert capfd.readouterr().err == "a real message\n 45%|####5     | 9/20\ranother one\n"


def test_a_run_that_failed_before_its_first_epoch_takes_a_new_config(tone_cache, tmp_path):
    from coughclf.runs import claim_run_dir

    path = write_config(tmp_path / "tones.toml", tone_cache)
    run_dir = claim_run_dir(load_config(path), tmp_path / "run", retake_unstarted=True)
    (run_dir / "split.json").write_text("{}")  # what the failed start decided from its config
    claim_run_dir(load_config(path, ["optimizer.lr=1e-4"]), run_dir, retake_unstarted=True)
    assert load_config(run_dir / "config.toml")["optimizer"]["lr"] == pytest.approx(1e-4)
    assert not (run_dir / "split.json").exists()
    (run_dir / "history.json").write_text("[]")  # an epoch finished: that run is resumed, not replaced
    with pytest.raises(CoughclfError, match="different config"):
        claim_run_dir(load_config(path, ["optimizer.lr=1e-2"]), run_dir, retake_unstarted=True)


# --- item 20: evaluation on a cohort whose classes differ -----------------------------------------

@pytest.fixture(scope="module")
def classifier_run(tone_cache, tmp_path_factory):
    """An untrained cough_small_cnn run on the tone cache (classes low, high), with its training.json."""
    from coughclf.cache import open_cache
    from coughclf.classification import build_model
    from coughclf.files import write_json

    root = tmp_path_factory.mktemp("classifier")
    config = load_config(write_config(root / "tones.toml", tone_cache))
    run = untrained_run(config, open_cache(tone_cache), root / "run",
                        lambda config, cache: build_model(config, len(cache.classes), cache.sample_rate))
    write_json(run / "training.json", {"classes": ["low", "high"], "cache": str(tone_cache)})
    return run


def _negatives_only_cohort(tone_cache, root):
    """The tone cache's ``low`` clips only, its classes named ``quiet`` and ``loud``."""
    import csv
    import shutil

    cohort = shutil.copytree(tone_cache, root / "cohort")
    with open(cohort / "manifest.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"] == "low"]
    for row in rows:
        row["label"] = "quiet"
    with open(cohort / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = json.loads((cohort / "cache.json").read_text())
    (cohort / "cache.json").write_text(json.dumps({**info, "classes": ["quiet", "loud"]}))
    return cohort


def test_a_negatives_only_cohort_with_renamed_labels_is_evaluated_on_its_classes(classifier_run, tone_cache,
                                                                               tmp_path, monkeypatch):
    import numpy as np

    from coughclf import plots
    from coughclf.evaluate import evaluate

    cohort = _negatives_only_cohort(tone_cache, tmp_path)
    with pytest.raises(CoughclfError, match=r"clips of \['quiet'\], classes the model .* --map-labels quiet=low"):
        evaluate(classifier_run, data=cohort, split="all")
    titles = []
    roc_curves = plots.roc_curves
    monkeypatch.setattr(plots, "roc_curves", lambda *args, **kwargs: titles.append(kwargs["title"])
                        or roc_curves(*args, **kwargs))
    results = evaluate(classifier_run, data=cohort, split="all", label_map={"quiet": "low", "loud": "high"},
                       group_by=["group"])
    saved = np.load(classifier_run / "predictions-all-cohort.npz")
    assert results["clips"] == 16 and results["classes_present"] == ["low"] and (saved["labels"] == 0).all()
    assert results["specificity"] == pytest.approx(np.mean(np.argmax(saved["probabilities"], axis=1) == 0))
    assert results["sensitivity"] is None and results["auc"] is None
    assert "sensitivity_at_specificity" not in results
    assert sum(group["n"] for group in results["groups"]["group"].values()) == 16
    assert len(results["groups"]["group"]) == 8  # per speaker
    assert titles and "on cohort, all, 16 clips" in titles[0]


def test_evaluate_cli_reads_label_maps_and_refuses_bad_ones(classifier_run, tone_cache, tmp_path, capsys):
    from coughclf.cli import main

    cohort = _negatives_only_cohort(tone_cache, tmp_path)
    assert main(["evaluate", str(classifier_run), "--data", str(cohort), "--split", "all", "--map-labels",
                 "quiet=low", "--group-by", "group", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["label_map"] == {"quiet": "low"} and set(printed["groups"]) == {"group"}
    assert main(["evaluate", str(classifier_run), "--data", str(cohort), "--map-labels", "quiet=silent"]) == 2
    assert "--map-labels names ['silent'], not classes of the model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(classifier_run), "--map-labels", "quiet"])


# --- items 9 and 16: every value a run uses is checked when the config loads ----------------------

@pytest.mark.parametrize("assignment, message", [
    ("optimizer.lr=0", r"optimizer\.lr = 0\.0 must be > 0"),
    ("optimizer.lr=-0.01", r"optimizer\.lr = -0\.01 must be > 0"),
    ("optimizer.lr=nan", r"optimizer\.lr = nan must be > 0"),
    ("train.patience=-1", r"train\.patience = -1 must be >= 0"),
    ('train.monitor="val_acuracy"', r"train\.monitor = 'val_acuracy' is not one of the values a classification run "
                                    r"logs \(did you mean 'val_accuracy'\?\): loss, accuracy, auc, val_loss"),
    ('tune.objective="val_aucc"', r"tune\.objective = 'val_aucc' is not one of the values a classification run "
                                  r"logs \(did you mean 'val_auc'\?\)"),
    ("frontend.n_mels=0", r"frontend\.n_mels = 0 must be >= 1"),
    ("frontend.n_mel=40", r"unknown key 'frontend\.n_mel' \(did you mean 'n_mels'\?\)"),
    ("data.clip_seconds=0", r"data\.clip_seconds = 0\.0 must be in \(0, 600\]"),
    ("data.clip_seconds=-1", r"data\.clip_seconds = -1\.0 must be in \(0, 600\]"),
    ("data.clip_seconds=1e6", r"data\.clip_seconds = 1000000\.0 must be in \(0, 600\]"),
    ("train.batch_size=0", r"train\.batch_size = 0 must be >= 1"),
    ("train.epochs=0", r"train\.epochs = 0 must be >= 1"),
    ("data.sample_rate=0", r"data\.sample_rate = 0 must be in \[1000, 384000\]"),
])
def test_a_bad_value_is_refused_at_load_naming_the_key_and_the_file(tone_cache, tmp_path, assignment, message):
    path = write_config(tmp_path / "tones.toml", tone_cache)
    with pytest.raises(CoughclfError, match=rf"^{tmp_path / 'tones.toml'}: {message}"):
        load_config(path, [assignment])


def test_the_values_a_speech_run_logs_are_its_monitors(tmp_path):
    raw = {"data": {"dataset": "yesno", "data_dir": str(tmp_path)}, "model": dict(TINY_CTC_MODEL)}
    assert config_from_dict({**raw, "train": {"monitor": "val_wer"}})["train"]["monitor"] == "val_wer"
    with pytest.raises(CoughclfError, match=r"train\.monitor = 'val_accuracy' is not one of the values a ctc run"):
        config_from_dict({**raw, "train": {"monitor": "val_accuracy"}})


def test_a_speech_run_gets_learning_curves_of_its_validation_error_rates(speech_run, tmp_path, monkeypatch):
    from coughclf import plots
    from coughclf.evaluate import evaluate
    from coughclf.files import write_json

    run = _copy_run(speech_run, tmp_path / "run")
    write_json(run / "history.json", [{"epoch": epoch, "learning_rate": 1e-3, "loss": 90.0 - 10 * epoch,
                                       "val_loss": 95.0 - 9 * epoch, "val_cer": 0.9 - 0.1 * epoch,
                                       "val_wer": 1.0 - 0.05 * epoch} for epoch in range(3)])
    panels = []
    save_figure = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: panels.extend(
        axis.get_title() for axis in figure.axes) or save_figure(figure, path))
    evaluate(run)
    assert (run / "plots" / "learning_curves.png").stat().st_size > 10_000
    assert panels == ["loss", "cer", "wer"]


# --- a shard damaged after preparing (issue 15 item 10) -------------------------------------------

def test_a_shard_damaged_without_changing_its_size_is_named_when_training_reads_it(tmp_path):
    from coughclf.cache import SHARD_PATTERN
    from coughclf.train import train

    cache = write_tone_cache(tmp_path / "tones")
    shard = cache / SHARD_PATTERN.format(index=1)
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF  # the record's checksum no longer matches; the size still does
    shard.write_bytes(bytes(content))
    config = load_config(write_config(tmp_path / "tones.toml", cache, epochs=1))
    with pytest.raises(CoughclfError, match=r"shard-00001\.tfrecord is damaged: .*coughclf prepare.*again"):
        train(config, run_dir=tmp_path / "run")
