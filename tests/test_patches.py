"""AST patch layers: grid sizes, patch order, positional-grid resizing, serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from coughclf.layers.blocks import ClassTokens
from coughclf.layers.patches import PatchEmbedding, PatchPositionalEmbedding, resize_positional_grid


@pytest.mark.parametrize("height, width, grid", [(128, 1024, (12, 101)), (128, 300, (12, 29)), (16, 16, (1, 1)),
                                                 (40, 101, (3, 9))])
def test_patch_grid_is_the_originals_overlapping_grid(height, width, grid):
    embedding = PatchEmbedding(8)
    assert embedding.grid_shape(height, width) == grid
    tokens = embedding(np.zeros((1, height, width, 1), "float32"))
    assert tuple(tokens.shape) == (1, grid[0] * grid[1], 8)


def test_patch_tokens_are_strided_16x16_projections_in_frequency_major_order():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 36, 47, 1)).astype("float32")
    layer = PatchEmbedding(5)
    tokens = keras.ops.convert_to_numpy(layer(images))
    kernel, bias = (keras.ops.convert_to_numpy(weight) for weight in (layer.kernel, layer.bias))
    f_dim, t_dim = layer.grid_shape(36, 47)
    for f in range(f_dim):
        for t in range(t_dim):
            patch = images[:, f * 10:f * 10 + 16, t * 10:t * 10 + 16, :]
            expected = np.einsum("bhwc,hwcd->bd", patch, kernel) + bias
            np.testing.assert_allclose(tokens[:, f * t_dim + t], expected, rtol=1e-4, atol=1e-4)


def _resize_reference(grid_embedding, new_grid):
    """TensorFlow's half-pixel bilinear resize (PyTorch ``align_corners=False``), no antialiasing."""
    return tf.image.resize(grid_embedding[None], new_grid, method="bilinear", antialias=False)[0].numpy()


def test_original_mode_cuts_the_centre_of_a_shorter_axis():
    grid = np.random.default_rng(1).standard_normal((12, 101, 4)).astype("float32")
    resized = resize_positional_grid(grid, (12, 29))
    # the original: pos_embed[:, :, :, 50 - int(t_dim / 2): 50 - int(t_dim / 2) + t_dim]
    np.testing.assert_array_equal(resized, grid[:, 50 - 14:50 - 14 + 29])
    np.testing.assert_array_equal(resize_positional_grid(grid, (8, 101)), grid[2:10])


def test_longer_axes_are_interpolated_like_pytorch_bilinear():
    grid = np.random.default_rng(2).standard_normal((12, 101, 4)).astype("float32")
    np.testing.assert_allclose(resize_positional_grid(grid, (12, 150)), _resize_reference(grid, (12, 150)),
                               atol=1e-4)
    np.testing.assert_allclose(resize_positional_grid(grid, (20, 150)), _resize_reference(grid, (20, 150)),
                               atol=1e-4)
    np.testing.assert_allclose(resize_positional_grid(grid, (7, 40), mode="bilinear"),
                               _resize_reference(grid, (7, 40)), atol=1e-4)
    np.testing.assert_array_equal(resize_positional_grid(grid, (12, 101), mode="bilinear"), grid)


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match="bilinear"):
        resize_positional_grid(np.zeros((2, 2, 1)), (3, 3), mode="nearest")


def test_positional_embedding_set_from_keeps_the_tokens_and_resizes_the_grid():
    source = PatchPositionalEmbedding((3, 10))
    source(np.zeros((1, 32, 6), "float32"))
    target = PatchPositionalEmbedding((3, 4))
    target(np.zeros((1, 14, 6), "float32"))
    embedding = keras.ops.convert_to_numpy(source.embedding)
    target.set_from(embedding, source.grid)
    loaded = keras.ops.convert_to_numpy(target.embedding)
    np.testing.assert_array_equal(loaded[:, :2], embedding[:, :2])
    np.testing.assert_array_equal(loaded[0, 2:].reshape(3, 4, 6), embedding[0, 2:].reshape(3, 10, 6)[:, 3:7])


def test_positional_embedding_refuses_a_sequence_of_the_wrong_length():
    with pytest.raises(ValueError, match="2 \\+ 3x4 = 14"):
        PatchPositionalEmbedding((3, 4))(np.zeros((1, 13, 6), "float32"))


def test_patch_layers_round_trip_through_keras_files(tmp_path):
    image = keras.Input((40, 56, 1))
    patches = PatchEmbedding(12, name="patches")
    tokens = ClassTokens(num_tokens=2)(patches(image))
    tokens = PatchPositionalEmbedding(patches.grid_shape(40, 56), name="positions")(tokens)
    model = keras.Model(image, tokens)
    images = np.random.default_rng(3).standard_normal((2, 40, 56, 1)).astype("float32")
    path = tmp_path / "patches.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("positions").grid == (3, 5)
    assert loaded.get_layer("patches").get_config()["stride"] == 10
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images)),
                                  keras.ops.convert_to_numpy(model(images)))
