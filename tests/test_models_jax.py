"""Every registered model gives the same outputs under KERAS_BACKEND=jax as under TensorFlow.

The TensorFlow side (this process) builds each model, saves its weights, an input batch
and its outputs; one subprocess with the JAX backend rebuilds every model, loads the
weights and writes its outputs; each model's test compares them within 1e-4.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from model_checks import SMALL_OPTIONS, random_inputs

from coughclf.models import available, build

pytest.importorskip("jax")

JAX_SIDE = """
import json, sys
from pathlib import Path
import keras, numpy as np
from coughclf.models import build

assert keras.backend.backend() == "jax", keras.backend.backend()
folder = Path(sys.argv[1])
for name, options in json.loads((folder / "options.json").read_text()).items():
    model = build(name, **options)
    model.load_weights(folder / f"{name}.weights.h5")
    with np.load(folder / f"{name}.inputs.npz") as saved:
        inputs = {key: saved[key] for key in saved.files}
    outputs = model(inputs if len(inputs) > 1 else next(iter(inputs.values())), training=False)
    np.savez(folder / f"{name}.jax.npz", *[keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)])
"""


def _flat_outputs(model, inputs):
    return [keras.ops.convert_to_numpy(output) for output in keras.tree.flatten(model(inputs, training=False))]


def _outputs_on_both_backends(names, folder):
    """``{name: (tensorflow_outputs, jax_outputs)}`` for the models ``names``."""
    options = {name: SMALL_OPTIONS.get(name, {}) for name in names}
    tensorflow_outputs = {}
    for name, model_options in options.items():
        model = build(name, **model_options)
        inputs = random_inputs(model, seed=1)
        named_inputs = inputs if isinstance(inputs, dict) else {model.inputs[0].name: inputs}
        np.savez(folder / f"{name}.inputs.npz", **named_inputs)
        model.save_weights(folder / f"{name}.weights.h5")
        tensorflow_outputs[name] = _flat_outputs(model, inputs)
        keras.backend.clear_session()
    (folder / "options.json").write_text(json.dumps(options))
    environment = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", JAX_SIDE, str(folder)], env=environment,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = {}
    for name, expected in tensorflow_outputs.items():
        with np.load(folder / f"{name}.jax.npz") as saved:
            outputs[name] = (expected, [saved[f"arr_{index}"] for index in range(len(saved.files))])
    return outputs


# In the default run, the models that exercise every custom layer (InputProjectedLSTM,
# TimeLinearPooling, split-head attention and CLS tokens, AST patches, the shared-input RNN);
# JAX compiles each new op shape on first use, so all models together take minutes: -m slow.
CORE = [name for name in ("cough_crnn_attention", "esc_conv_transformer", "ast", "deepspeech2_lite")
        if name in available()]
OTHERS = [name for name in available() if name not in CORE]


@pytest.fixture(scope="module")
def core_outputs(tmp_path_factory):
    return _outputs_on_both_backends(CORE, tmp_path_factory.mktemp("jax_core"))


@pytest.fixture(scope="module")
def other_outputs(tmp_path_factory):
    return _outputs_on_both_backends(OTHERS, tmp_path_factory.mktemp("jax_others"))


@pytest.mark.parametrize("name", CORE)
def test_jax_forward_pass_matches_tensorflow(name, core_outputs):
    _assert_same_outputs(*core_outputs[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_every_other_model_matches_under_jax(name, other_outputs):
    _assert_same_outputs(*other_outputs[name])


def _assert_same_outputs(tensorflow_outputs, jax_outputs):
    assert len(jax_outputs) == len(tensorflow_outputs)
    for expected, actual in zip(tensorflow_outputs, jax_outputs):
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)
