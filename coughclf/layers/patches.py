"""Patch tokens for the Audio Spectrogram Transformer (report 3; Gong et al. 2021, "AST").

AST cuts a log-mel image ``[n_mels, frames]`` into *overlapping* 16 × 16 patches with
stride 10 (on 128 × 1,024: a 12 × 101 grid, 1,212 patches), prepends a learned CLS
token and a DeiT distillation token (:class:`coughclf.layers.blocks.ClassTokens` with
``num_tokens=2``), and adds a learned positional embedding over ``2 + 1,212``
positions. Patches and positions are separate layers here so that a model built for
one input length can take the positional embedding of another:
:func:`resize_positional_grid` cuts or interpolates the patch grid the way the
original ``ASTModel`` does when its input length differs from the pre-training one.

Example::

    import keras
    from coughclf.layers.blocks import ClassTokens
    from coughclf.layers.patches import PatchEmbedding, PatchPositionalEmbedding

    image = keras.Input((128, 300, 1))                     # [n_mels, frames, 1]
    embed = PatchEmbedding(embed_dim=64)
    grid = embed.grid_shape(128, 300)                      # (12, 29)
    tokens = PatchPositionalEmbedding(grid)(ClassTokens(num_tokens=2)(embed(image)))
    print(tokens.shape)                                    # (None, 350, 64)
"""

import keras
import numpy as np
from keras import ops

PATCH_GRID_MODES = ("original", "bilinear")


@keras.saving.register_keras_serializable(package="coughclf")
class PatchEmbedding(keras.layers.Layer):
    """Overlapping square patches → linear tokens: ``Conv2d(C, D, patch, stride)``, flattened.

    Input ``[batch, height (mels), width (frames), channels]``; output
    ``[batch, f_dim * t_dim, embed_dim]`` in row-major (frequency, time) order, the
    order of PyTorch's ``conv(x).flatten(2).transpose(1, 2)`` in the original code.
    ``f_dim = (height - patch_size) // stride + 1`` and likewise ``t_dim``.

    Args:
        embed_dim: token width (768 in AST base).
        patch_size: square patch side (16).
        stride: step between patches on both axes (10: patches overlap by 6).
    """

    def __init__(self, embed_dim, patch_size=16, stride=10, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = int(embed_dim)
        self.patch_size = int(patch_size)
        self.stride = int(stride)

    def grid_shape(self, height, width):
        """``(f_dim, t_dim)``: patches along the frequency and time axes."""
        return tuple((size - self.patch_size) // self.stride + 1 for size in (height, width))

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kernel = self.add_weight(name="kernel",
                                      shape=(self.patch_size, self.patch_size, channels, self.embed_dim),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.embed_dim,), initializer="zeros")

    def call(self, images):
        patches = ops.conv(images, self.kernel, strides=self.stride, padding="valid",
                           data_format="channels_last")
        patches = patches + self.bias
        f_dim, t_dim = patches.shape[1], patches.shape[2]
        return ops.reshape(patches, (-1, f_dim * t_dim, self.embed_dim))

    def compute_output_shape(self, input_shape):
        f_dim, t_dim = self.grid_shape(input_shape[1], input_shape[2])
        return (input_shape[0], f_dim * t_dim, self.embed_dim)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "patch_size": self.patch_size,
                "stride": self.stride}


@keras.saving.register_keras_serializable(package="coughclf")
class PatchPositionalEmbedding(keras.layers.Layer):
    """Adds a learned embedding to ``num_extra_tokens + f_dim * t_dim`` token positions.

    The weight ``embedding`` has shape ``[1, num_extra_tokens + f_dim * t_dim, width]``
    (AST base: ``[1, 1214, 768]``); its patch part is a ``(f_dim, t_dim)`` grid in the
    order of :class:`PatchEmbedding`. :meth:`set_from` loads the embedding of a layer
    built for another grid, resized with :func:`resize_positional_grid`.

    Args:
        grid: ``(f_dim, t_dim)`` patch grid of the input.
        num_extra_tokens: positions before the patches (CLS and distillation: 2).
    """

    def __init__(self, grid, num_extra_tokens=2, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(int(size) for size in grid)
        self.num_extra_tokens = int(num_extra_tokens)

    @property
    def num_positions(self):
        return self.num_extra_tokens + self.grid[0] * self.grid[1]

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.num_positions:
            raise ValueError(f"{self.name}: {input_shape[1]} tokens in, but the embedding covers "
                             f"{self.num_extra_tokens} + {self.grid[0]}x{self.grid[1]} = "
                             f"{self.num_positions} positions")
        self.embedding = self.add_weight(name="embedding",
                                         shape=(1, self.num_positions, input_shape[-1]),
                                         initializer=keras.initializers.TruncatedNormal(stddev=0.02))

    def call(self, tokens):
        return tokens + ops.cast(self.embedding, tokens.dtype)

    def set_from(self, embedding, grid, mode="original"):
        """Load ``embedding`` (a ``[1, extra + f*t, width]`` array for ``grid``) into this grid.

        The extra-token rows are copied; the patch grid is resized by
        :func:`resize_positional_grid` with ``mode``.
        """
        embedding = np.asarray(embedding)
        extra, patches = embedding[:, :self.num_extra_tokens], embedding[:, self.num_extra_tokens:]
        width = embedding.shape[-1]
        patch_grid = patches.reshape(grid[0], grid[1], width)
        resized = resize_positional_grid(patch_grid, self.grid, mode=mode)
        self.embedding.assign(np.concatenate([extra, resized.reshape(1, -1, width)], axis=1))

    def get_config(self):
        return {**super().get_config(), "grid": list(self.grid), "num_extra_tokens": self.num_extra_tokens}


def resize_positional_grid(grid_embedding, new_grid, mode="original"):
    """Resize a ``[f_dim, t_dim, width]`` positional-embedding grid to ``new_grid``.

    ``mode="original"`` does what Gong et al.'s ``ASTModel`` does for each axis (time
    first, then frequency): a shorter axis keeps the *centre* slice
    ``[old // 2 - new // 2, old // 2 - new // 2 + new)``, a longer one is interpolated
    bilinearly. ``mode="bilinear"`` interpolates both axes whatever their length.
    Interpolation is PyTorch's ``interpolate(mode="bilinear", align_corners=False)``
    (half-pixel centres, no antialiasing), done per axis since bilinear is separable.

    Returns a new ``[new_f_dim, new_t_dim, width]`` float32 array.
    """
    if mode not in PATCH_GRID_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {PATCH_GRID_MODES}")
    resized = np.asarray(grid_embedding, dtype=np.float32)
    for axis in (1, 0):
        old, new = resized.shape[axis], int(new_grid[axis])
        if mode == "original" and new <= old:
            start = old // 2 - new // 2
            resized = np.take(resized, np.arange(start, start + new), axis=axis)
        else:
            resized = _linear_resize(resized, new, axis)
    return resized


def _linear_resize(array, new_size, axis):
    """Linear interpolation along ``axis`` with half-pixel centres (``align_corners=False``)."""
    old_size = array.shape[axis]
    source = (np.arange(new_size) + 0.5) * (old_size / new_size) - 0.5
    source = np.clip(source, 0.0, old_size - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, old_size - 1)
    shape = [1] * array.ndim
    shape[axis] = new_size
    fraction = (source - lower).reshape(shape)
    return ((1.0 - fraction) * np.take(array, lower, axis=axis)
            + fraction * np.take(array, upper, axis=axis)).astype(np.float32)
