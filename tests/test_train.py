"""coughclf train / evaluate on a tiny cache: the run folder, resume after SIGKILL, class weights, CLI."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train_data import write_config, write_tone_cache

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tone_cache(tmp_path_factory):
    return write_tone_cache(tmp_path_factory.mktemp("cache") / "tones")


@pytest.fixture(scope="module")
def finished_run(tone_cache, tmp_path_factory):
    """One run trained to the end (3 epochs) with metrics grouped by a metadata column."""
    from coughclf.config import load_config
    from coughclf.train import train

    folder = tmp_path_factory.mktemp("run")
    config = write_config(folder / "tones.toml", tone_cache, extra='group_by = ["meta_source"]')
    return train(load_config(config), folder / "run")


def test_run_folder_holds_config_model_history_metrics_and_plots(finished_run):
    from coughclf.config import load_config

    for name in ("config.toml", "best.keras", "history.csv", "history.json", "split.json", "training.json",
                 "metrics.json", "predictions.npz"):
        assert (finished_run / name).is_file(), name
    for plot in ("learning_curves", "roc", "confusion_matrix", "spectrograms"):
        assert (finished_run / "plots" / f"{plot}.png").stat().st_size > 10_000, plot
    assert list((finished_run / "logs" / "train").glob("events.out.tfevents.*"))
    assert not (finished_run / "resume.weights.h5").exists()  # a finished run has nothing to resume
    used = load_config(finished_run / "config.toml")
    assert used["train"]["epochs"] == 3 and used["optimizer"]["lr"] == pytest.approx(3e-3)
    history = json.loads((finished_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[-1]["loss"] < history[0]["loss"]  # it learns


def test_metrics_json_agrees_with_the_saved_predictions(finished_run):
    from coughclf import metrics

    results = json.loads((finished_run / "metrics.json").read_text())
    split = json.loads((finished_run / "split.json").read_text())
    saved = np.load(finished_run / "predictions.npz")
    assert sorted(saved["ids"]) == sorted(split["test"]) and results["clips"] == len(split["test"])
    assert results["accuracy"] == pytest.approx(metrics.accuracy(saved["labels"], saved["probabilities"]))
    assert results["auc"] == pytest.approx(metrics.macro_auc(saved["labels"], saved["probabilities"]))
    groups = results["groups"]["meta_source"]
    assert set(groups) == {"app", "phone"}
    assert sum(group["n"] for group in groups.values()) == results["n"]
    assert set(split["train"]).isdisjoint(split["test"]) and set(split["validation"]).isdisjoint(split["test"])


def test_evaluate_another_split_writes_its_own_files(finished_run):
    from coughclf.evaluate import evaluate

    results = evaluate(finished_run, split="validation", make_plots=False)
    split = json.loads((finished_run / "split.json").read_text())
    assert results["clips"] == len(split["validation"])
    assert (finished_run / "metrics-validation.json").exists()


@pytest.mark.slow  # ~13 s; test_cv's killed CV and test_resume's exact weights cover a SIGKILL and resume
def test_a_run_killed_with_sigkill_resumes_at_its_last_epoch(tone_cache, tmp_path):
    """A real SIGKILL after epoch 2 of 4; the second start runs epochs 3 and 4 only."""
    config = write_config(tmp_path / "tones.toml", tone_cache, epochs=4)
    run_dir = tmp_path / "run"
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO / "tests")!r})
import keras
from coughclf.config import load_config
from coughclf.train import train

class KillAfterSecondEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

train(load_config({str(config)!r}), {str(run_dir)!r}, callbacks=[KillAfterSecondEpoch()])
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in before] == [0, 1]
    assert (run_dir / "resume.weights.h5").exists() and not (run_dir / "training.json").exists()

    import keras

    from coughclf.config import load_config
    from coughclf.train import train

    class EpochsSeen(keras.callbacks.Callback):
        seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch)

    train(load_config(config), run_dir, callbacks=[EpochsSeen()], evaluate_after=False)
    assert EpochsSeen.seen == [2, 3]
    after = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in after] == [0, 1, 2, 3]
    assert after[:2] == before  # the killed run's epochs are kept, not re-run
    summary = json.loads((run_dir / "training.json").read_text())
    assert summary["epochs_run"] == 4 and summary["resumed_at_epoch"] == 2
    assert (run_dir / "best.keras").exists() and not (run_dir / "resume.weights.h5").exists()


def test_resuming_with_a_different_config_is_refused(finished_run):
    from coughclf.config import load_config
    from coughclf.errors import CoughclfError
    from coughclf.train import train

    config = load_config(finished_run / "config.toml", ["train.epochs=9"])
    with pytest.raises(CoughclfError, match="different config"):
        train(config, finished_run)


def test_a_run_started_before_a_key_was_added_resumes(finished_run, tmp_path):
    # A run folder written before optimizer.ema existed: its config lacks the key, at its default
    # it is the same config; a changed value is still refused.
    from coughclf.config import load_config
    from coughclf.errors import CoughclfError
    from coughclf.runs import claim_run_dir

    old_run = tmp_path / "old-run"
    old_run.mkdir()
    text = (finished_run / "config.toml").read_text()
    assert "ema = 0.0\n" in text
    (old_run / "config.toml").write_text(text.replace("ema = 0.0\n", ""))
    config = load_config(finished_run / "config.toml")
    assert claim_run_dir(config, old_run) == old_run
    with pytest.raises(CoughclfError, match="different config"):
        claim_run_dir(load_config(finished_run / "config.toml", ["optimizer.ema=0.9"]), old_run)


def test_a_run_folder_in_use_by_another_process_is_refused_until_that_process_dies(finished_run, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from coughclf.config import load_config
    from coughclf.errors import CoughclfError
    from coughclf.runs import claim_run_dir

    run_dir = tmp_path / "shared-run"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from coughclf.config import load_config
from coughclf.runs import claim_run_dir
claim_run_dir(load_config({str(finished_run / "config.toml")!r}), {str(run_dir)!r})
time.sleep(120)
"""])
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "config.toml").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        config = load_config(finished_run / "config.toml")
        with pytest.raises(CoughclfError, match=rf"in use by process {holder.pid}; .*another --run-dir"):
            claim_run_dir(config, run_dir)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert claim_run_dir(config, run_dir) == run_dir  # a killed holder leaves the folder free to resume
    assert claim_run_dir(config, run_dir) == run_dir  # and this process may claim its own folder again


def test_class_weights_follow_the_balance_formula(tone_cache, tmp_path):
    """balance.mode = class_weight passes the report's weights to fit (checked on an unbalanced split)."""
    import keras

    from coughclf.config import load_config
    from coughclf.pipeline import class_weights
    from coughclf import classification
    from coughclf.fitting import fit_run
    from coughclf.runs import claim_run_dir, make_strategy

    config = load_config(write_config(tmp_path / "c.toml", tone_cache, epochs=1,
                                      extra='[balance]\nmode = "class_weight"\nformula = "inverse"'))
    split = {"train": [f"low-{i:03d}" for i in range(12)] + [f"high-{i:03d}" for i in range(4)],
             "validation": ["low-012", "high-012"], "test": []}
    captured = {}
    original_fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        captured.update(kwargs)
        return original_fit(self, *args, **kwargs)

    keras.Model.fit = recording_fit
    try:
        fit_run(config, claim_run_dir(config, tmp_path / "run"), make_strategy(None), classification.plan_fit,
                split=split)
    finally:
        keras.Model.fit = original_fit
    assert captured["class_weight"] == pytest.approx(class_weights([0] * 12 + [1] * 4, "inverse"))
    assert captured["class_weight"][1] == pytest.approx(2.0)


def test_cli_train_reports_a_bad_config_key_in_one_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[data]\ndataset = "folder"\n[model]\nname = "kws_cnn"\n[train]\nepoch = 3\n')
    result = subprocess.run([sys.executable, "-m", "coughclf", "train", str(config)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    assert "train.epoch" in result.stderr and "did you mean 'epochs'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_evaluate_prints_json(finished_run):
    result = subprocess.run([sys.executable, "-m", "coughclf", "evaluate", str(finished_run), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    assert printed["accuracy"] == pytest.approx(json.loads((finished_run / "metrics.json").read_text())["accuracy"])


def test_default_cache_follows_the_loaders_listing(tmp_path):
    """A data folder that gained a clip (or a loader that relabels) gets a new cache, never a stale one."""
    from coughclf.config import config_from_dict
    from coughclf.synthetic import write_dataset
    from coughclf.inputs import default_cache_path

    write_dataset(tmp_path / "data", clips_per_class=2, subjects=1, seconds=0.5)
    raw = {"data": {"dataset": "folder", "data_dir": str(tmp_path / "data")}, "model": {"name": "kws_cnn"}}
    first = default_cache_path(config_from_dict(raw))
    assert default_cache_path(config_from_dict(raw)) == first
    (tmp_path / "data" / "dry" / "s0_000.wav").rename(tmp_path / "data" / "wet" / "s0_099.wav")
    assert default_cache_path(config_from_dict(raw)) != first


def test_jit_compile_setting_is_explicit_or_follows_the_device():
    from coughclf.config import config_from_dict
    from coughclf.optim import jit_compile

    raw = {"data": {"dataset": "folder", "data_dir": "."}, "model": {"name": "kws_cnn"}}
    assert jit_compile(config_from_dict({**raw, "train": {"jit_compile": "on"}}, check_names=False)) is True
    assert jit_compile(config_from_dict({**raw, "train": {"jit_compile": "off"}}, check_names=False)) is False
    import tensorflow as tf

    # "auto": XLA only with an accelerator; on CPU TensorFlow's kernels ran the train steps faster
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert jit_compile(config_from_dict(raw, check_names=False)) is has_gpu


@pytest.mark.slow  # two runs of 4 epochs: ~14 s loaded
def test_weight_averaging_saves_the_average_of_the_weights(tone_cache, tmp_path):
    # With a momentum of 0.999 the average of a few dozen steps stays near where the first step
    # put it (Keras starts the average there), while the weights themselves go on moving:
    # best.keras must hold the average.
    import keras

    from coughclf.cache import open_cache
    from coughclf.config import load_config
    from coughclf.classification import build_model
    from coughclf.train import train

    cache = open_cache(tone_cache)
    moved = {}
    for ema in (0.0, 0.999):
        config = load_config(write_config(tmp_path / "tones.toml", tone_cache, epochs=4),
                             [f"optimizer.ema={ema}", "train.monitor=\"loss\""])
        run = train(config, tmp_path / f"run-{ema}", evaluate_after=False)
        keras.utils.set_random_seed(config["train"]["seed"])
        initial = [w.numpy() for w in build_model(config, len(cache.classes), cache.sample_rate).trainable_weights]
        saved = keras.saving.load_model(run / "best.keras", compile=False, safe_mode=True).trainable_weights
        moved[ema] = sum(float(np.abs(a.numpy() - b).sum()) for a, b in zip(saved, initial))
    assert moved[0.999] < 0.5 * moved[0.0]
