"""The library internals of coughclf.compat still exist and take the arguments coughclf passes.

A failure here means a library upgrade changed one: update coughclf.compat (and its caller).
"""

import inspect

import keras
import numpy as np
from keras import ops

from coughclf.compat import BACKEND_RNN_ARGUMENTS, backend_rnn


def test_keras_backend_rnn_takes_the_arguments_coughclf_passes():
    parameters = inspect.signature(backend_rnn()).parameters
    missing = [name for name in BACKEND_RNN_ARGUMENTS if name not in parameters]
    assert not missing, f"keras {keras.__version__}: backend.rnn no longer takes {missing}"


def test_keras_backend_rnn_runs_a_cumulative_sum():
    # step: state + input, so the outputs are the running sums and the last state their total
    def step(inputs, states):
        total = states[0] + inputs
        return total, [total]

    sequences = np.arange(6, dtype="float32").reshape(1, 3, 2)
    last, outputs, states = backend_rnn()(step, ops.convert_to_tensor(sequences), [ops.zeros((1, 2))],
                                          go_backwards=False, unroll=False, input_length=3,
                                          return_all_outputs=True)
    np.testing.assert_allclose(ops.convert_to_numpy(outputs), np.cumsum(sequences, axis=1))
    np.testing.assert_allclose(ops.convert_to_numpy(last), [[6.0, 9.0]])


def test_litert_interpreter_lists_its_operators():
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from coughclf.compat import tflite_operators

    @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32)])
    def scaled(x):
        return x * tf.constant([1.0, 2.0, 3.0])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([scaled.get_concrete_function()], scaled)
    interpreter = Interpreter(model_content=converter.convert())
    operators = tflite_operators(interpreter)
    assert [op["op_name"] for op in operators] == ["MUL"]
    assert {"inputs", "outputs"} <= set(operators[0])


def test_a_model_saved_without_its_training_state_leaves_the_optimizer_out_and_keeps_it_after(tmp_path):
    import zipfile

    import h5py

    from coughclf.compat import without_training_state

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(keras.optimizers.Adam(), "mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    optimizer = model.optimizer
    with without_training_state(model):
        model.save(tmp_path / "model.keras")
    assert model.optimizer is optimizer and model.compiled
    with zipfile.ZipFile(tmp_path / "model.keras") as archive, archive.open("model.weights.h5") as weights:
        with h5py.File(weights, "r") as stored:
            assert "layers" in stored and "optimizer" not in stored


def test_a_model_never_compiled_is_saved_as_it_is(tmp_path):
    """A head trained on cached embeddings saves the whole model sharing its layers, which was never compiled."""
    from coughclf.compat import without_training_state

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with without_training_state(model):
        model.save(tmp_path / "model.keras")
    assert not model.compiled
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "model.keras").predict(np.ones((1, 3)), verbose=0),
                               model.predict(np.ones((1, 3)), verbose=0))
