"""Every registry model trains under ``mixed_bfloat16`` and ``mixed_float16``, on TensorFlow and JAX.

What must stay float32 does (the log-mel front end, the softmax / log-softmax outputs, the LSTMs that
JAX's cuDNN path runs only in float32), the rest computes in half precision, the loss stays finite
and float16 gets a loss-scaling optimizer.
"""

import json

import keras
import numpy as np
import pytest
from jax_subprocess import run_on_jax
from mixed_precision_checks import FAMILIES, POLICIES, train_briefly
from model_checks import HEAVY

from coughclf.models import available

TESTS_FOLDER = __import__("pathlib").Path(__file__).parent
OTHERS = {name: "features" for name in available() if name not in FAMILIES}


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


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", FAMILIES)
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


def test_every_model_family_trains_in_mixed_precision_on_jax():
    runs = [(name, policy, mode) for name, mode in FAMILIES.items() for policy in POLICIES]
    for (name, policy, _), result in zip(runs, _train_on_jax(runs)):
        _assert_trained_in_mixed_precision(result, policy)


@pytest.mark.slow
def test_every_other_model_trains_in_mixed_precision_on_jax():
    runs = [(name, policy, mode) for name, mode in OTHERS.items() if name not in HEAVY for policy in POLICIES]
    for (name, policy, _), result in zip(runs, _train_on_jax(runs)):
        _assert_trained_in_mixed_precision(result, policy)
