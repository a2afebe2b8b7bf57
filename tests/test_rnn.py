"""The shared-input bidirectional RNN of DeepSpeech2 (report 5) and the padding helpers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from coughclf.layers.rnn import SharedInputBiRNN, reverse_within_lengths
from coughclf.layers.sequence import SequenceLengths, SequenceMask


def reference_birnn(x, kernel, bias, forward, backward, activation=np.tanh):
    """The report's equations for one unpadded sequence ``[steps, d]``, in NumPy."""
    projected = x @ kernel + bias
    steps, units = len(x), len(bias)
    h_forward, h_backward = np.zeros((steps, units)), np.zeros((steps, units))
    state = np.zeros(units)
    for t in range(steps):
        state = activation(projected[t] + state @ forward)
        h_forward[t] = state
    state = np.zeros(units)
    for t in reversed(range(steps)):
        state = activation(projected[t] + state @ backward)
        h_backward[t] = state
    return h_forward + h_backward


def masked_model(layer, features):
    inputs = keras.Input((None, features))
    lengths = keras.Input((), dtype="int32")
    return keras.Model([inputs, lengths], layer(SequenceMask()([inputs, lengths])))


def _weights(layer):
    return [np.asarray(w) for w in (layer.kernel, layer.bias, layer.recurrent_kernel_forward,
                                    layer.recurrent_kernel_backward)]


@pytest.mark.parametrize("d, h", [(5, 4), (64, 32), (256, 256)])
def test_parameter_count_is_dh_plus_h_plus_2h_squared(d, h):
    layer = SharedInputBiRNN(h)
    layer.build((None, None, d))
    assert layer.count_params() == d * h + h + 2 * h * h
    assert len(layer.trainable_weights) == 4


def test_outputs_follow_the_reports_equations():
    rng = np.random.default_rng(0)
    layer = SharedInputBiRNN(6, activation="tanh", bias_initializer="random_normal")
    x = rng.standard_normal((2, 9, 5)).astype("float32")
    outputs = np.asarray(layer(x))
    for row in range(2):
        expected = reference_birnn(x[row], *_weights(layer))
        np.testing.assert_allclose(outputs[row], expected, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_padding_changes_no_valid_output_and_padded_outputs_are_zero(activation):
    rng = np.random.default_rng(1)
    layer = SharedInputBiRNN(7, activation=activation, bias_initializer="random_normal")
    model = masked_model(layer, 5)
    lengths = np.array([11, 6, 3, 1], "int32")
    x = rng.standard_normal((4, 11, 5)).astype("float32")
    x[1, 6:] = 100.0  # whatever sits in the padding must not leak into valid frames
    outputs = np.asarray(model([x, lengths]))
    for row, length in enumerate(lengths):
        alone = np.asarray(model([x[row:row + 1, :length], lengths[row:row + 1]]))[0]
        np.testing.assert_allclose(outputs[row, :length], alone, atol=1e-5)
        np.testing.assert_allclose(outputs[row, :length], reference_birnn(
            x[row, :length], *_weights(layer), activation=np.tanh if activation == "tanh" else
            (lambda v: np.maximum(v, 0.0))), atol=1e-4)
        assert np.all(outputs[row, length:] == 0.0)


def test_backward_direction_starts_at_each_examples_last_valid_frame():
    # With U→ = 0 both directions see only W x_t + b at an example's last valid frame
    # if, and only if, the backward state starts there (from zero).
    layer = SharedInputBiRNN(4, activation="tanh", bias_initializer="ones")
    model = masked_model(layer, 3)
    layer.recurrent_kernel_forward.assign(np.zeros((4, 4), "float32"))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 3)).astype("float32")
    lengths = np.array([8, 5, 2], "int32")
    outputs = np.asarray(model([x, lengths]))
    kernel, bias = np.asarray(layer.kernel), np.asarray(layer.bias)
    for row, length in enumerate(lengths):
        last = length - 1
        np.testing.assert_allclose(outputs[row, last], 2 * np.tanh(x[row, last] @ kernel + bias), atol=1e-5)


def test_keras_masking_layer_gives_the_same_outputs_as_lengths():
    rng = np.random.default_rng(3)
    layer = SharedInputBiRNN(5, activation="tanh")
    lengths = np.array([6, 4], "int32")
    x = rng.standard_normal((2, 6, 3)).astype("float32") + 0.5
    x[1, 4:] = 0.0
    inputs = keras.Input((None, 3))
    masking = keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))
    np.testing.assert_allclose(np.asarray(masking(x)), np.asarray(masked_model(layer, 3)([x, lengths])), atol=1e-6)


def test_reverse_within_lengths_keeps_padding_in_place():
    x = np.arange(10, dtype="float32").reshape(2, 5)
    reversed_ = np.asarray(reverse_within_lengths(x, np.array([5, 3])))
    assert reversed_.tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]


def test_sequence_lengths_match_conv_and_stft_frame_counts():
    lengths = np.array([0, 1, 2, 9, 10, 16000], "int32")
    conv = np.asarray(SequenceLengths(kernel_size=11, stride=2, padding=5)(lengths))
    assert conv.tolist() == [int(np.ceil(n / 2)) for n in lengths]
    stft = np.asarray(SequenceLengths(kernel_size=400, stride=160, padding=200)(lengths))
    assert stft.tolist() == [1 + n // 160 for n in lengths]
    assert np.asarray(SequenceLengths(kernel_size=5, stride=1)(np.array([3, 5]))).tolist() == [0, 1]


def test_serialisation_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    model = masked_model(SharedInputBiRNN(6, activation="relu", name="birnn"), 4)
    x, lengths = rng.standard_normal((2, 7, 4)).astype("float32"), np.array([7, 4], "int32")
    model.save(tmp_path / "rnn.keras")
    loaded = keras.saving.load_model(tmp_path / "rnn.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded([x, lengths])), np.asarray(model([x, lengths])))
    config = loaded.get_layer("birnn").get_config()
    assert config["units"] == 6 and config["activation"] == "relu"


# Runs under KERAS_BACKEND=jax: the same weights and padded batch as the TensorFlow side.
_JAX_SCRIPT = """
import json, sys
import numpy as np
from coughclf.layers.rnn import SharedInputBiRNN
from coughclf.layers.sequence import SequenceMask
data = np.load(sys.argv[1])
layer = SharedInputBiRNN(5, activation="tanh")
layer.build((None, None, 3))
layer.set_weights([data["kernel"], data["bias"], data["forward"], data["backward"]])
masking = SequenceMask()
masked = masking([data["x"], data["lengths"]])
outputs = layer(masked, mask=masking.compute_mask([data["x"], data["lengths"]]))
print(json.dumps(np.asarray(outputs).tolist()))
"""


def test_jax_backend_matches_tensorflow(tmp_path):
    rng = np.random.default_rng(5)
    layer = SharedInputBiRNN(5, activation="tanh", bias_initializer="random_normal")
    x, lengths = rng.standard_normal((2, 6, 3)).astype("float32"), np.array([6, 3], "int32")
    expected = np.asarray(masked_model(layer, 3)([x, lengths]))
    np.savez(tmp_path / "data.npz", x=x, lengths=lengths, kernel=np.asarray(layer.kernel),
             bias=np.asarray(layer.bias), forward=np.asarray(layer.recurrent_kernel_forward),
             backward=np.asarray(layer.recurrent_kernel_backward))
    environment = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", _JAX_SCRIPT, str(tmp_path / "data.npz")], capture_output=True,
                            text=True, env=environment, cwd=Path(__file__).parents[1], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.array(json.loads(result.stdout.strip().splitlines()[-1])), expected, atol=1e-5)
