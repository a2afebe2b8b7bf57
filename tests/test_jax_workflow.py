"""The whole workflow under ``KERAS_BACKEND=jax`` (tf.data still feeding it): train, evaluate, cv, tune,
export, predict and demo for a classifier, train, evaluate, export and predict for the CTC model.

One JAX process (CPU) runs the commands in turn through :func:`coughclf.cli.main`, as a user
would; this (TensorFlow) process prepares the data and trains the same fixed-seed classifier
for the comparison of the two backends.
"""

import json
import math

import numpy as np
import pytest
from conftest import tone, write_audio
from jax_subprocess import run_on_jax
from train_data import write_config, write_tone_cache

from coughclf.config import config_from_dict, dump_config

TINY_CTC_MODEL = {"name": "deepspeech2_lite", "conv_filters": 8, "conv_kernel": 5, "rnn_units": 8,
                  "rnn_layers": 2, "activation": "tanh"}
TINY_CTC_FRONTEND = {"n_fft": 256, "win_length": 200, "hop_length": 80, "n_mels": 16}
YESNO = ["0_1", "1_1", "0_0", "1_0", "0_1_1", "1_0_0", "0_0_1", "1_1_0"]
TUNE = """
[tune]
max_trials = 1
[tune.space]
"optimizer.lr" = [3e-3]
"""
EPOCHS = 3
# The fixed-seed classifier run on JAX against the same run on TensorFlow, both from the same initial
# weights and fed the same tf.data batches; XLA's and TensorFlow's kernels round differently. Measured
# over two runs: training losses within 1e-5 relative, validation losses (of overconfident models, ~2)
# within 4e-4 relative, test probabilities within 2e-6.
LOSS_TOLERANCE = 1e-3  # relative
PROBABILITY_TOLERANCE = 1e-4  # measured 2e-6 to 1.3e-5 over runs (XLA vs TF kernels)

CHAIN = """
import json, sys
import coughclf.models
from coughclf.cli import main

# The first model built (the classifier's run) starts from the weights the TensorFlow side saved.
original_build = coughclf.models.build
def build_from_saved_weights(name, **options):
    coughclf.models.build = original_build
    model = original_build(name, **options)
    model.load_weights(sys.argv[2])
    return model
coughclf.models.build = build_from_saved_weights

codes = []
for command in json.loads(sys.argv[1]):
    codes.append(main(command))
    if codes[-1]:
        break
print(json.dumps(codes))
"""


def _starting_from(weights, monkeypatch):
    """Make the next model ``coughclf.models.build`` builds in this process start from ``weights``."""
    import coughclf.models

    original = coughclf.models.build

    def build_from_saved_weights(name, **options):
        monkeypatch.setattr(coughclf.models, "build", original)
        model = original(name, **options)
        model.load_weights(weights)
        return model

    monkeypatch.setattr(coughclf.models, "build", build_from_saved_weights)


def _ctc_config(folder):
    """A tiny deepspeech2_lite experiment on yes/no recordings long enough for their transcripts."""
    for index, name in enumerate(YESNO):
        write_audio(folder / "yesno" / "waves_yesno" / f"{name}.wav",
                    tone(1.0, 8000, 300.0 + 200 * name.count("1"), seed=index), 8000)
    raw = {"name": "tiny_ctc",
           "data": {"dataset": "yesno", "data_dir": str(folder / "yesno"), "sample_rate": 8000,
                    "cache": str(folder / "yesno_cache")},
           "split": {"method": "official", "val": 0.0}, "model": TINY_CTC_MODEL, "frontend": TINY_CTC_FRONTEND,
           "train": {"epochs": 2, "batch_size": 4, "patience": 0}, "ctc": {"beam_width": 4, "examples": 1}}
    path = folder / "ctc.toml"
    dump_config(config_from_dict(raw), path)
    return path


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    """The folder where the JAX process ran every command, after asserting that each succeeded."""
    from coughclf.classification import build_model
    from coughclf.config import load_config
    from coughclf.prepare import prepare

    folder = tmp_path_factory.mktemp("jax_workflow")
    cache = write_tone_cache(folder / "tones", clips_per_class=8)
    tones = write_config(folder / "tones.toml", cache, epochs=EPOCHS, extra=TUNE)
    # Both backends' runs of the classifier start from these weights: the same seed draws different
    # ones on each backend, which would leave nothing to compare but two different trainings.
    build_model(load_config(tones), num_classes=2, sample_rate=16000).save_weights(folder / "initial.weights.h5")
    folds = write_config(folder / "folds.toml", cache, epochs=1, split='method = "kfold"\nk = 2\nval = 0.25')
    write_audio(folder / "clip.wav", tone(1.0, 16000, 2000.0, amplitude=0.3))
    ctc = _ctc_config(folder)
    prepare("yesno", folder / "yesno", folder / "yesno_cache", sample_rate=8000, progress=False)
    commands = [
        ["train", str(tones), "--run-dir", str(folder / "run")],
        ["evaluate", str(folder / "run"), "--split", "validation"],
        ["export", str(folder / "run"), "--out", str(folder / "tones.tflite")],
        ["predict", str(folder / "tones.tflite"), str(folder / "clip.wav"), "--json"],
        ["cv", str(folds), "--run-dir", str(folder / "cv")],
        ["tune", str(tones), "--directory", str(folder / "search"), "--set", "train.epochs=1"],
        ["train", str(ctc), "--run-dir", str(folder / "ctc_run")],
        ["export", str(folder / "ctc_run"), "--out", str(folder / "ctc.tflite")],
        ["predict", str(folder / "ctc.tflite"), str(folder / "yesno" / "waves_yesno" / "0_1.wav")],
        ["demo", "--out", str(folder / "demo"), "--epochs", "1", "--clips-per-class", "6"],
    ]
    result = run_on_jax(CHAIN, json.dumps(commands), folder / "initial.weights.h5", cwd=folder, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes == [0] * len(commands), (commands[len(codes) - 1], result.stderr[-4000:])
    return folder, result.stdout


def test_a_classifier_trains_evaluates_exports_and_predicts_on_jax(jax_runs):
    folder, printed = jax_runs
    run = folder / "run"
    history = json.loads((run / "history.json").read_text())
    assert len(history) == EPOCHS and all(math.isfinite(row["loss"]) for row in history)
    metrics = json.loads((run / "metrics.json").read_text())  # the evaluation after training
    assert metrics["clips"] == 4 and 0.0 <= metrics["accuracy"] <= 1.0
    assert (run / "metrics-validation.json").exists() and (run / "plots" / "roc.png").exists()
    prediction = json.loads(printed[printed.index('[\n  {'):printed.index('}\n]') + 3])[0]
    assert prediction["label"] in ("low", "high") and 0.5 <= prediction["probability"] <= 1.0


def test_cv_tune_and_demo_run_on_jax(jax_runs):
    folder, _ = jax_runs
    summary = json.loads((folder / "cv" / "summary.json").read_text())
    assert summary["folds"] == 2
    assert (folder / "search" / "best.json").exists()
    assert len(list((folder / "demo").glob("run-*/metrics.json"))) == 1
    assert list((folder / "demo").rglob("*.tflite"))


def test_the_ctc_model_trains_evaluates_exports_and_predicts_on_jax(jax_runs):
    folder, _ = jax_runs
    metrics = json.loads((folder / "ctc_run" / "metrics.json").read_text())
    assert metrics["utterances"] == 4 and metrics["cer"] >= 0.0
    assert (folder / "ctc.tflite").stat().st_size > 0


def test_a_fixed_seed_run_on_jax_is_close_to_the_same_run_on_tensorflow(jax_runs, monkeypatch):
    from coughclf.config import load_config
    from coughclf.train import train

    folder, _ = jax_runs
    _starting_from(folder / "initial.weights.h5", monkeypatch)
    tensorflow_run = train(load_config(folder / "tones.toml"), folder / "tensorflow_run")
    histories = [json.loads((run / "history.json").read_text()) for run in (folder / "run", tensorflow_run)]
    for jax_row, tensorflow_row in zip(*histories, strict=True):
        for key in ("loss", "val_loss"):
            assert jax_row[key] == pytest.approx(tensorflow_row[key], rel=LOSS_TOLERANCE)
    jax_predictions, tensorflow_predictions = (np.load(run / "predictions.npz")
                                               for run in (folder / "run", tensorflow_run))
    assert list(jax_predictions["ids"]) == list(tensorflow_predictions["ids"])
    np.testing.assert_allclose(jax_predictions["probabilities"], tensorflow_predictions["probabilities"],
                               atol=PROBABILITY_TOLERANCE)
