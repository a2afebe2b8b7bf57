"""Cross-validation: per-fold runs, the mean ± std summary, resume at the unfinished fold; ESC-10 unchanged."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miniatures import write_esc50
from train_data import write_config, write_tone_cache

REPO = Path(__file__).resolve().parents[1]


def test_killed_cv_resumes_at_the_unfinished_fold_and_summarises_every_fold(tmp_path):
    cache = write_tone_cache(tmp_path / "cache")
    config_path = write_config(tmp_path / "cv.toml", cache, epochs=2, split='method = "kfold"\nk = 3\nval = 0.2',
                               extra='group_by = ["meta_source"]')
    out = tmp_path / "cv"
    # Fold 0 trains 2 epochs; the third epoch end is fold 1's first: SIGKILL there.
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO / "tests")!r})
import keras
from coughclf.config import load_config
from coughclf.cv import cross_validate

class KillInSecondFold(keras.callbacks.Callback):
    epochs_ended = 0
    def on_epoch_end(self, epoch, logs=None):
        KillInSecondFold.epochs_ended += 1
        if KillInSecondFold.epochs_ended == 3:
            os.kill(os.getpid(), signal.SIGKILL)

cross_validate(load_config({str(config_path)!r}), {str(out)!r}, callbacks=[KillInSecondFold()])
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "fold-0" / "fold-done.json").exists()
    assert not (out / "fold-1" / "fold-done.json").exists() and (out / "fold-1" / "resume.weights.h5").exists()
    fold0_model_time = (out / "fold-0" / "best.keras").stat().st_mtime_ns

    from coughclf.config import load_config
    from coughclf.cv import cross_validate

    report = cross_validate(load_config(config_path), out)
    assert (out / "fold-0" / "best.keras").stat().st_mtime_ns == fold0_model_time  # not trained again
    resumed = json.loads((out / "fold-1" / "training.json").read_text())
    assert resumed["resumed_at_epoch"] == 1 and resumed["epochs_run"] == 2
    assert report["folds"] == 3

    folds = json.loads((out / "folds.json").read_text())
    tested = [clip for fold in folds for clip in fold["test"]]
    assert len(tested) == len(set(tested)) == 32  # every clip tested exactly once
    per_fold = [json.loads((out / f"fold-{i}" / "metrics.json").read_text()) for i in range(3)]
    for name in ("accuracy", "auc", "per_class.high.recall", "groups.meta_source.phone.accuracy"):
        head, *rest = name.split(".")
        values = []
        for fold in per_fold:
            value = fold[head]
            for part in rest:
                value = value[part]
            values.append(value)
        assert report["metrics"][name]["values"] == pytest.approx(values)
        assert report["metrics"][name]["mean"] == pytest.approx(np.mean(values))
        assert report["metrics"][name]["std"] == pytest.approx(np.std(values, ddof=1))
    summary_csv = (out / "summary.csv").read_text().splitlines()
    assert summary_csv[0] == "metric,mean,std,fold_0,fold_1,fold_2"
    assert any(line.startswith("auc,") for line in summary_csv)
    for plot in ("metrics_per_fold.png", "roc_per_fold.png"):
        assert (out / "plots" / plot).stat().st_size > 10_000


def test_cv_refuses_a_split_without_folds(tmp_path):
    from coughclf.config import load_config
    from coughclf.cv import cross_validate
    from coughclf.errors import CoughclfError

    cache = write_tone_cache(tmp_path / "cache")
    with pytest.raises(CoughclfError, match="split.method = 'kfold'"):
        cross_validate(load_config(write_config(tmp_path / "c.toml", cache)), tmp_path / "cv")


def test_esc10_experiment_runs_unchanged_on_a_miniature_esc50_folder(tmp_path):
    """experiments/esc/esc_cnn1d.toml with only the data folder, the cache and the sizes overridden."""
    from coughclf.config import load_config
    from coughclf.train import train

    data_dir = write_esc50(tmp_path / "esc50")
    config = load_config(REPO / "experiments" / "esc" / "esc_cnn1d.toml", [
        f"data.data_dir={data_dir}", f"data.cache={tmp_path / 'cache'}", "split.method=fold",
        "train.epochs=1", "train.batch_size=16", "metrics.bootstrap=20"])
    run = train(config, tmp_path / "run")
    split = json.loads((run / "split.json").read_text())
    manifest = {row["id"]: row for row in __import__("csv").DictReader(open(tmp_path / "cache" / "manifest.csv"))}
    assert {manifest[i]["fold"] for i in split["test"]} == {"1"}
    assert {manifest[i]["fold"] for i in split["validation"]} == {"2"}
    assert {manifest[i]["fold"] for i in split["train"]} == {"3", "4", "5"}
    results = json.loads((run / "metrics.json").read_text())
    assert results["class_names"] == ["dog", "rooster"]  # the ESC-10 rows only
    assert results["n"] == len(split["test"])
    assert results["window_level"]["n"] == 9 * len(split["test"])  # 9 windows of 1 s per clip
