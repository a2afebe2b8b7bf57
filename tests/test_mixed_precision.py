"""Every registry model trains under ``mixed_bfloat16`` and ``mixed_float16``, on TensorFlow and JAX.

What must stay float32 does (the log-mel front end, the softmax / log-softmax outputs, the LSTMs that
JAX's cuDNN path runs only in float32), the rest computes in half precision, the loss stays finite
and float16 gets a loss-scaling optimizer.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tone
from jax_subprocess import run_on_jax
from mixed_precision_checks import FAMILIES, POLICIES, train_briefly
from model_checks import HEAVY

from coughclf.models import available

TESTS_FOLDER = Path(__file__).parent
OTHERS = {name: "features" for name in available() if name not in FAMILIES}
# Plain convolutions and BatchNorm as cough_crnn's, a slow CPU step in half precision: -m slow.
SLOW_FAMILIES = {"resnet18"}
# JAX's CPU dot_general has no float16 × float16 → float32 product, which jax.nn.dot_product_attention
# (Keras' MultiHeadAttention on JAX) asks for: float16 attention runs on GPUs only (bfloat16 runs here).
FLOAT16_ATTENTION = {"ast", "cough_crnn_attention"}


def _assert_trained_in_mixed_precision(result, policy):
    half = keras.DTypePolicy(policy).compute_dtype
    assert np.isfinite(result["losses"]).all(), result["losses"]
    assert result["outputs_finite"]
    assert [dtype for dtype in result["output_dtypes"] if "int" not in dtype] == ["float32"]
    for role, layers in result["float32_roles"].items():
        assert set(layers.values()) <= {"float32"}, (role, layers)
    assert half in result["weighted_compute_dtypes"]  # the policy is really in effect
    assert result["model_policy"] == policy
    assert result["loss_scaled"] == (policy == "mixed_float16")


def _slow_unless(condition, *values):
    return pytest.param(*values, marks=() if condition else pytest.mark.slow)


# In the default run every family under mixed_bfloat16 (the GPU policy that failed before) and the
# CTC model under mixed_float16 (loss scaling); all the rest with -m slow.
@pytest.mark.parametrize("name, policy", [
    _slow_unless(name not in SLOW_FAMILIES and (policy == "mixed_bfloat16" or name == "deepspeech2_lite"),
                 name, policy) for name in FAMILIES for policy in POLICIES])
def test_every_model_family_trains_in_mixed_precision_on_tensorflow(name, policy):
    result = train_briefly(name, policy, FAMILIES[name])
    _assert_trained_in_mixed_precision(result, policy)
    if name in ("cough_crnn", "kws_parallel_cnn_lstm"):
        assert len(result["float32_roles"]["recurrent"]) == 2  # both directions' LSTMs
    if FAMILIES[name] == "waveform":
        assert list(result["float32_roles"]["front_end"].values()) == ["float32"]
    assert keras.config.dtype_policy().name == "float32"  # the policy was the model's alone


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(OTHERS))
def test_every_other_model_trains_in_mixed_precision_on_tensorflow(name, policy):
    _assert_trained_in_mixed_precision(train_briefly(name, policy, OTHERS[name]), policy)


JAX_SIDE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from mixed_precision_checks import train_briefly
runs = json.loads(sys.argv[2])
print(json.dumps([train_briefly(name, policy, mode) for name, policy, mode in runs]))
"""


def _train_on_jax(runs):
    result = run_on_jax(JAX_SIDE, TESTS_FOLDER, json.dumps(runs))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _assert_trained_on_jax(runs):
    for (name, policy, _), result in zip(runs, _train_on_jax(runs), strict=True):
        _assert_trained_in_mixed_precision(result, policy)
        if name in ("cough_crnn", "kws_crnn"):
            assert set(result["float32_roles"]["recurrent"].values()) == {"float32"}


@pytest.mark.slow  # a JAX process compiling an LSTM and the CTC model: ~65 s loaded
def test_an_lstm_model_and_the_ctc_model_train_in_mixed_precision_on_jax():
    # An InputProjectedLSTM, which JAX's cuDNN path rejected in bfloat16 (kws_crnn: cough_crnn's LSTM
    # class in a smaller model, quicker to compile); the CTC loss behind a float16 loss scale.
    _assert_trained_on_jax([("kws_crnn", "mixed_bfloat16", "features"),
                            ("deepspeech2_lite", "mixed_float16", "waveform")])


@pytest.mark.slow
def test_every_model_trains_in_mixed_precision_on_jax():
    models = {**FAMILIES, **{name: mode for name, mode in OTHERS.items() if name not in HEAVY}}
    _assert_trained_on_jax([(name, policy, mode) for name, mode in models.items() for policy in POLICIES
                            if not (policy == "mixed_float16" and name in FLOAT16_ATTENTION)])


# --- [train] mixed_precision: the config key, the flag, a run and its export ---------------------------

def test_the_flag_sets_the_config_key_and_a_bad_value_is_one_line_naming_it(tmp_path):
    from train_data import write_config

    from coughclf.cli import build_parser
    from coughclf.commands.train import load_config_of
    from coughclf.config import load_config
    from coughclf.errors import CoughclfError

    path = write_config(tmp_path / "tones.toml", tmp_path / "cache")
    for command in ("train", "cv", "tune"):
        args = build_parser().parse_args([command, str(path), "--mixed-precision", "mixed_bfloat16"])
        assert load_config_of(args)["train"]["mixed_precision"] == "mixed_bfloat16"
    assert load_config(path)["train"]["mixed_precision"] == "off"
    with pytest.raises(CoughclfError, match="train.mixed_precision = 'half' is not one of"):
        load_config(path, ['train.mixed_precision="half"'])


@pytest.mark.slow  # two epochs and two TFLite conversions: ~40 s on a quiet machine
def test_a_float16_run_trains_with_loss_scaling_and_exports_float32_or_float16_tflite(tmp_path):
    from test_export import op_input_types, run_tflite
    from train_data import write_config, write_tone_cache

    from coughclf.config import load_config
    from coughclf.export import export_tflite
    from coughclf.train import train

    class Optimizer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.loss_scaled = isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer)

    seen = Optimizer()
    cache = write_tone_cache(tmp_path / "cache", clips_per_class=8)
    config = load_config(write_config(tmp_path / "tones.toml", cache, epochs=2),
                         ['train.mixed_precision="mixed_float16"'])
    run = train(config, tmp_path / "run", callbacks=[seen], evaluate_after=False)
    assert seen.loss_scaled
    model = keras.saving.load_model(run / "best.keras", compile=False)
    assert model.get_layer("block1_conv").compute_dtype == "float16"
    assert model.get_layer("classifier").compute_dtype == "float32"

    waveform = np.asarray(tone(1.0, 16000, 2000.0, amplitude=0.3))
    expected = np.asarray(model.predict_on_batch(waveform[None]))[0]
    for quantize, half_types in (("none", set()), ("float16", {"float16"})):
        out = tmp_path / f"{quantize}.tflite"
        export_tflite(run, out, quantize)
        content = out.read_bytes()
        types = set().union(*op_input_types(content).values())
        assert "bfloat16" not in types and (types & {"float16"}) == half_types, types
        # float16 computation in training, float32 in the export: the same probabilities to 1e-2.
        np.testing.assert_allclose(run_tflite(content, waveform), expected, atol=1e-2)


@pytest.mark.slow
def test_kws_cnn_in_mixed_bfloat16_is_within_noise_of_float32_on_fsdd(shared_data, tmp_path):
    """FSDD's official split: the same config and seed trained in float32 and in mixed_bfloat16, test accuracy
    on the 300 test clips within noise of each other: two binomial standard errors of the float32 accuracy
    (about 4 points at 90 %), and never less than 2 clips."""
    import math
    import os

    from coughclf.config import config_from_dict
    from coughclf.train import train

    accuracies = {}
    for policy in ("off", "mixed_bfloat16"):
        config = config_from_dict({
            "name": f"kws_cnn_{policy}",
            "data": {"dataset": "fsdd", "data_dir": str(shared_data / "fsdd"), "cache": str(tmp_path / "cache"),
                     "clip_seconds": 1.0},
            "split": {"method": "official", "val": 0.0},
            "model": {"name": "kws_cnn", "input_mode": "waveform"},
            "train": {"epochs": int(os.environ.get("COUGHCLF_TEST_EPOCHS", 6)), "patience": 0,
                      "monitor": "accuracy", "mixed_precision": policy},
            "metrics": {"bootstrap": 0, "examples": 0},
        })
        run = train(config, tmp_path / policy)
        results = json.loads((run / "metrics.json").read_text())
        assert results["clips"] == 300
        accuracies[policy] = results["accuracy"]
    reference = accuracies["off"]
    assert reference > 0.5, accuracies
    noise = max(2 * math.sqrt(reference * (1 - reference) / 300), 2 / 300)
    assert abs(accuracies["mixed_bfloat16"] - reference) <= noise, accuracies
