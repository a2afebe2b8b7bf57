"""AST (report 3, Gong et al. 2021): exact base count, the original's forward pass, length transfer."""

import keras
import numpy as np
import pytest
from scipy.special import erf

from conftest import tone
from coughclf.models import build, spec
from coughclf.models.ast import transfer_weights
from coughclf.models.common import trainable_params

TINY = {"depth": 2, "width": 16, "num_heads": 4}


def test_base_model_has_the_reports_exact_count_and_patch_grid():
    model = build("ast", num_classes=527)
    assert trainable_params(model) == spec("ast").report_params == 86_594_063
    assert model.input.shape[1:] == (1024, 128)
    assert model.get_layer("patch_embedding").output.shape[1:] == (12 * 101, 768)
    assert model.get_layer("positional_embedding").embedding.shape == (1, 1214, 768)
    assert sum(layer.name.endswith("_attn") for layer in model.layers) == 12
    default_head = 768 * 3 + 3
    assert spec("ast").param_difference == default_head - (768 * 527 + 527)


def _layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def _original_forward(model, fbank, depth, num_heads):
    """``ASTModel.forward`` of Gong et al. in numpy, on the Keras model's weights."""
    def weights(name):
        return [weight.astype("float64") for weight in model.get_layer(name).get_weights()]

    image = fbank.transpose(0, 2, 1)[..., None]  # x.unsqueeze(1).transpose(2, 3)
    kernel, bias = weights("patch_embedding")
    f_dim, t_dim = (image.shape[1] - 16) // 10 + 1, (image.shape[2] - 16) // 10 + 1
    patches = np.stack([image[:, f * 10:f * 10 + 16, t * 10:t * 10 + 16] for f in range(f_dim)
                        for t in range(t_dim)], axis=1)
    x = np.einsum("bnhwc,hwcd->bnd", patches, kernel) + bias
    (tokens,) = weights("cls_dist_tokens")
    x = np.concatenate([np.broadcast_to(tokens, (x.shape[0], *tokens.shape)), x], axis=1)
    x = x + weights("positional_embedding")[0]
    for index in range(depth):
        h = _layer_norm(x, *weights(f"block{index}_norm1"), 1e-6)
        wq, bq, wk, bk, wv, bv, wo, bo = weights(f"block{index}_attn")
        q, k, v = (np.einsum("bnd,dhk->bhnk", h, w) + b[None, :, None]
                   for w, b in ((wq, bq), (wk, bk), (wv, bv)))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        x = x + np.einsum("bhnk,hkd->bnd", attention @ v, wo) + bo
        h = _layer_norm(x, *weights(f"block{index}_norm2"), 1e-6)
        w1, b1 = weights(f"block{index}_mlp_fc1")
        w2, b2 = weights(f"block{index}_mlp_fc2")
        h = h @ w1 + b1
        x = x + (0.5 * h * (1 + erf(h / np.sqrt(2)))) @ w2 + b2
    x = _layer_norm(x, *weights("norm"), 1e-6)
    pooled = _layer_norm((x[:, 0] + x[:, 1]) / 2, *weights("head_norm"), 1e-5)
    head_kernel, head_bias = weights("head")
    logits = pooled @ head_kernel + head_bias
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    return probabilities / probabilities.sum(-1, keepdims=True)


def _randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([0.3 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])


def test_forward_pass_equals_the_original_ast():
    model = build("ast", num_classes=4, frames=56, n_mels=36, **TINY)
    _randomise(model)
    fbank = np.random.default_rng(1).standard_normal((3, 56, 36)).astype("float32")
    np.testing.assert_allclose(model.predict(fbank, verbose=0), _original_forward(model, fbank, 2, 4),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("frames, grid", [(300, (12, 29)), (1500, (12, 149))])
def test_positional_embedding_transfers_to_another_length(frames, grid):
    trained = build("ast", frames=1024, depth=1, width=8, num_heads=2)
    _randomise(trained)
    other = build("ast", frames=frames, depth=1, width=8, num_heads=2)
    assert transfer_weights(trained, other) == []
    assert other.get_layer("positional_embedding").grid == grid
    source = keras.ops.convert_to_numpy(trained.get_layer("positional_embedding").embedding)
    target = keras.ops.convert_to_numpy(other.get_layer("positional_embedding").embedding)
    np.testing.assert_array_equal(target[:, :2], source[:, :2])
    if frames < 1024:
        np.testing.assert_array_equal(target[0, 2:].reshape(*grid, 8),
                                      source[0, 2:].reshape(12, 101, 8)[:, 50 - 14:50 - 14 + 29])
    for name in ("patch_embedding", "block0_attn", "head"):
        for copied, original in zip(other.get_layer(name).get_weights(), trained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(copied, original)
    fbank = np.random.default_rng(2).standard_normal((2, frames, 128)).astype("float32")
    assert np.all(np.isfinite(other.predict(fbank, verbose=0)))


def test_transfer_skips_a_head_for_another_class_count():
    source = build("ast", frames=56, n_mels=36, num_classes=527, **TINY)
    target = build("ast", frames=56, n_mels=36, num_classes=3, **TINY)
    assert transfer_weights(source, target) == ["head"]


def test_waveform_mode_with_metadata_inputs():
    plain = build("ast", input_mode="waveform", frames=100, **TINY)
    model = build("ast", input_mode="waveform", frames=100, metadata_dim=3, clip_features=True, **TINY)
    assert model.get_layer("log_mel").output.shape[1:] == (100, 128)
    assert [tensor.name for tensor in model.inputs] == ["audio", "metadata"]
    assert model.inputs[0].shape[1:] == (99 * 160,)
    assert model.get_layer("head").kernel.shape == (16 + 6, 3)
    assert trainable_params(model) - trainable_params(plain) == 6 * 3
    inputs = {"audio": np.stack([tone(0.99), tone(0.99, frequency=700.0, seed=3)]),
              "metadata": np.array([[0.2, 0.0, 0.5], [0.8, 1.0, 0.1]], "float32")}
    assert model.predict(inputs, verbose=0).shape == (2, 3)


def test_ast_round_trips(tmp_path):
    model = build("ast", frames=56, n_mels=36, **TINY)
    _randomise(model)
    fbank = np.random.default_rng(4).standard_normal((2, 56, 36)).astype("float32")
    path = tmp_path / "ast.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(fbank, verbose=0), model.predict(fbank, verbose=0))
