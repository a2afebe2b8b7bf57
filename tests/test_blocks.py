"""The custom blocks: values against hand computations, parameter counts, serialisation."""

import keras
import numpy as np
import pytest

from coughclf.layers.blocks import (ClassTokens, InputProjectedLSTM, PositionalEncoding, SplitHeadSelfAttention,
                                    TimeLinearPooling, TransformerEncoderLayer, balanced_head_widths)


def _round_trip(layer, inputs, tmp_path):
    """Wrap ``layer`` in a model, save it to .keras, reload with safe_mode and compare outputs."""
    model_input = keras.Input(shape=inputs.shape[1:])
    model = keras.Model(model_input, layer(model_input))
    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(inputs, verbose=0), loaded.predict(inputs, verbose=0))
    return loaded


def test_time_linear_pooling_equals_hand_computation(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 31, 5)).astype("float32")
    layer = TimeLinearPooling()
    layer.build(x.shape)
    weights, bias = rng.standard_normal(31).astype("float32"), np.float32(0.7)
    layer.set_weights([weights, np.array([bias])])
    expected = np.array([[sum(weights[t] * x[b, t, c] for t in range(31)) + bias for c in range(5)]
                         for b in range(3)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)
    assert layer.count_params() == 32
    _round_trip(layer, x, tmp_path)


def test_time_linear_pooling_needs_fixed_length():
    with pytest.raises(ValueError, match="fixed number of time steps"):
        TimeLinearPooling()(keras.Input(shape=(None, 4)))


def test_class_tokens_prepend_the_learned_token(tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 4, 6)).astype("float32")
    layer = ClassTokens(num_tokens=2)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == (2, 6, 6)
    np.testing.assert_array_equal(out[:, 2:], x)
    np.testing.assert_array_equal(out[0, :2], keras.ops.convert_to_numpy(layer.tokens))
    np.testing.assert_array_equal(out[1, :2], out[0, :2])
    _round_trip(layer, x, tmp_path)


def test_cls_output_of_encoder_depends_on_the_token():
    """The CLS position's encoder output changes when (only) the token changes."""
    x = np.random.default_rng(2).standard_normal((1, 5, 10)).astype("float32")
    tokens, encoder = ClassTokens(), TransformerEncoderLayer(10, num_heads=2, ffn_dim=16, dropout=0.0)
    before = keras.ops.convert_to_numpy(encoder(tokens(x)))
    tokens.tokens.assign(tokens.tokens + 1.0)
    after = keras.ops.convert_to_numpy(encoder(tokens(x)))
    assert np.abs(after[:, 0] - before[:, 0]).max() > 1e-3


@pytest.mark.parametrize("embed_dim, heads, widths", [(250, 1, [250]), (250, 2, [125, 125]),
                                                      (250, 4, [63, 63, 62, 62]), (8, 3, [3, 3, 2])])
def test_balanced_head_widths(embed_dim, heads, widths):
    assert balanced_head_widths(embed_dim, heads) == widths


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_split_head_attention_keeps_pytorch_parameter_count(heads):
    layer = SplitHeadSelfAttention(250, heads)
    layer.build((None, 33, 250))
    assert layer.count_params() == 251_000


def test_split_head_attention_equals_reference_computation():
    """Each head attends with its own slice of Q, K, V scaled by 1/sqrt(its width)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 7)).astype("float32")
    layer = SplitHeadSelfAttention(7, 3)
    layer(x)
    q, k, v = (keras.ops.convert_to_numpy(p(x)) for p in (layer.query, layer.key, layer.value))
    heads, start = [], 0
    for width in (3, 2, 2):
        part = slice(start, start + width)
        scores = q[..., part] @ k[..., part].transpose(0, 2, 1) / np.sqrt(width)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(weights / weights.sum(-1, keepdims=True) @ v[..., part])
        start += width
    out_kernel, out_bias = (keras.ops.convert_to_numpy(w) for w in layer.output_projection.weights)
    expected = np.concatenate(heads, -1) @ out_kernel + out_bias
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-4, atol=1e-5)


def test_split_head_attention_rejects_bad_widths():
    with pytest.raises(ValueError, match="summing to 250"):
        SplitHeadSelfAttention(250, 2, head_widths=[125, 120])


def test_encoder_layer_is_post_norm_with_reported_count(tmp_path):
    layer = TransformerEncoderLayer(250, num_heads=4)
    x = np.random.default_rng(4).standard_normal((2, 33, 250)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x))
    assert layer.count_params() == 1_278_298
    # post-norm: the output is a LayerNorm output (zero mean, unit variance per token, γ=1, β=0)
    np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(-1), 1.0, atol=1e-3)
    loaded = _round_trip(layer, x, tmp_path)
    assert loaded.layers[-1].attention.head_widths == [63, 63, 62, 62]


def test_encoder_dropout_only_in_training():
    layer = TransformerEncoderLayer(8, num_heads=2, ffn_dim=16, dropout=0.5)
    x = np.random.default_rng(5).standard_normal((2, 4, 8)).astype("float32")
    inference = [keras.ops.convert_to_numpy(layer(x)) for _ in range(2)]
    np.testing.assert_array_equal(*inference)
    training = keras.ops.convert_to_numpy(layer(x, training=True))
    assert np.abs(training - inference[0]).max() > 1e-3


def test_sinusoidal_positions_match_the_formula(tmp_path):
    x = np.zeros((1, 6, 5), "float32")
    out = keras.ops.convert_to_numpy(PositionalEncoding("sinusoidal")(x))[0]
    position, column = np.arange(6)[:, None], np.arange(5)[None, :]
    angle = position / 10000 ** ((column - column % 2) / 5)
    np.testing.assert_allclose(out, np.where(column % 2 == 0, np.sin(angle), np.cos(angle)), atol=1e-5)
    _round_trip(PositionalEncoding("sinusoidal"), x, tmp_path)


def test_learned_positions_are_weights(tmp_path):
    layer = PositionalEncoding("learned")
    x = np.ones((2, 3, 4), "float32")
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, np.broadcast_to(1.0 + keras.ops.convert_to_numpy(layer.positions), out.shape))
    assert layer.count_params() == 12
    _round_trip(layer, x, tmp_path)
    with pytest.raises(ValueError, match="sinusoidal"):
        PositionalEncoding("none")


@pytest.mark.parametrize("options", [{"return_sequences": True}, {"return_sequences": False},
                                     {"return_sequences": True, "go_backwards": True},
                                     {"return_sequences": True, "unroll": True}])
def test_input_projected_lstm_equals_keras_lstm(options, tmp_path):
    """Same weights, same outputs and gradients as keras.layers.LSTM (and interchangeable)."""
    x = keras.ops.convert_to_tensor(np.random.default_rng(6).standard_normal((3, 7, 5)).astype("float32"))
    reference, projected = keras.layers.LSTM(4, **options), InputProjectedLSTM(4, **options)
    reference(x)
    projected(x)
    projected.set_weights(reference.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(projected(x)),
                               keras.ops.convert_to_numpy(reference(x)), atol=1e-6)
    import tensorflow as tf

    gradients = []
    for layer in (reference, projected):
        with tf.GradientTape() as tape:
            loss = keras.ops.sum(keras.ops.square(layer(x)))
        gradients.append(tape.gradient(loss, layer.trainable_weights))
    for expected, actual in zip(*gradients, strict=True):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)
    _round_trip(projected, x.numpy(), tmp_path)


def test_bidirectional_input_projected_lstm_matches():
    x = np.random.default_rng(7).standard_normal((2, 6, 3)).astype("float32")
    reference = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    projected = keras.layers.Bidirectional(InputProjectedLSTM(4, return_sequences=True))
    reference(x)
    projected(x)
    projected.set_weights(reference.get_weights())
    assert isinstance(projected.backward_layer, InputProjectedLSTM)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(projected(x)),
                               keras.ops.convert_to_numpy(reference(x)), atol=1e-6)
