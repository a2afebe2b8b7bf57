"""SpecAugment (Park et al. 2019) on the front end's ``[batch, frames, n_mels]``: time warping,
frequency and time masks, and the three together; identity unless ``training=True``."""

import keras
from keras import ops

from coughclf.errors import CoughclfError
from coughclf.layers.augment_base import TINY, RandomAugmentation, interpolate_along_time
from coughclf.layers.frontend import float32_by_default

@keras.saving.register_keras_serializable(package="coughclf")
class TimeWarp(RandomAugmentation):
    """SpecAugment time warping on ``[batch, frames, n_mels]``.

    A random anchor frame ``c`` (at least ``max_warp`` frames from either end)
    moves to ``c + w`` with ``w`` uniform in ``[-max_warp, max_warp]``; the
    frames on each side are stretched linearly to follow (linear interpolation
    between frames), so the first and last frames stay put. Shorter inputs
    get a proportionally smaller warp.
    """

    def __init__(self, max_warp=5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_warp = float(max_warp)

    def sample_parameters(self, inputs):
        batch = ops.shape(inputs)[0]
        last = ops.cast(ops.shape(inputs)[1] - 1, "float32")
        warp = ops.clip(last / 2.0 - 1.0, 0.0, self.max_warp)
        anchor = warp + self.uniform((batch,)) * (last - 2.0 * warp)
        return {"anchor": anchor, "warp": self.uniform((batch,), -1.0, 1.0) * warp}

    def transform(self, inputs, parameters):
        frames = ops.shape(inputs)[1]
        last = ops.cast(frames - 1, "float32")
        anchor = parameters["anchor"][:, None]
        moved = anchor + parameters["warp"][:, None]
        time = ops.arange(frames, dtype="float32")[None, :]
        before = time * anchor / ops.maximum(moved, TINY)
        after = anchor + (time - moved) * (last - anchor) / ops.maximum(last - moved, TINY)
        return interpolate_along_time(inputs, ops.where(time <= moved, before, after))

    def get_config(self):
        config = super().get_config()
        config.update(max_warp=self.max_warp)
        return config


class AxisMasking(RandomAugmentation):
    """Base of SpecAugment's masks: ``num_masks`` bands of width 0..``max_width`` on one axis.

    Masked cells take ``mask_value``: a number, or ``"mean"`` for the
    example's mean (neutral for dB features, where 0 would be the loudest value).
    """

    axis = None

    def __init__(self, num_masks=2, max_width=10, mask_value="mean", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mask_value != "mean" and not isinstance(mask_value, (int, float)):
            raise CoughclfError(
                f'{type(self).__name__}: mask_value={mask_value!r} must be "mean" or a number'
            )
        self.num_masks = int(num_masks)
        self.max_width = int(max_width)
        self.mask_value = mask_value

    def sample_parameters(self, inputs):
        batch, size = ops.shape(inputs)[0], ops.shape(inputs)[self.axis]
        shape = (batch, self.num_masks)
        width = ops.minimum(ops.floor(self.uniform(shape) * (self.max_width + 1)), ops.cast(size, "float32"))
        start = ops.floor(self.uniform(shape) * (ops.cast(size, "float32") - width + 1.0))
        return {"start": ops.cast(start, "int32"), "width": ops.cast(width, "int32")}

    def transform(self, inputs, parameters):
        position = ops.arange(ops.shape(inputs)[self.axis], dtype="int32")[None, None, :]
        start = parameters["start"][:, :, None]
        inside = ops.logical_and(position >= start, position < start + parameters["width"][:, :, None])
        masked = ops.expand_dims(ops.any(inside, axis=1), 3 - self.axis)
        if self.mask_value == "mean":
            value = ops.mean(inputs, axis=(1, 2), keepdims=True)
        else:
            value = ops.cast(self.mask_value, inputs.dtype)
        return ops.where(masked, value, inputs)

    def get_config(self):
        config = super().get_config()
        config.update(num_masks=self.num_masks, max_width=self.max_width, mask_value=self.mask_value)
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class FrequencyMasking(AxisMasking):
    """SpecAugment frequency masks on ``[batch, frames, n_mels]``: whole mel bands set to ``mask_value``."""

    axis = 2


@keras.saving.register_keras_serializable(package="coughclf")
class TimeMasking(AxisMasking):
    """SpecAugment time masks on ``[batch, frames, n_mels]``: whole frames set to ``mask_value``."""

    axis = 1


@keras.saving.register_keras_serializable(package="coughclf")
class SpecAugment(keras.layers.Layer):
    """SpecAugment (Park et al., 2019): time warp, then frequency masks, then time masks.

    Input ``[batch, frames, n_mels]``. ``time_warp=0`` or a mask count of 0
    disables that part. Identity unless ``training=True``.
    """

    def __init__(
        self,
        time_warp=5,
        freq_masks=2,
        freq_width=15,
        time_masks=2,
        time_width=20,
        mask_value="mean",
        seed=None,
        **kwargs,
    ):
        super().__init__(**float32_by_default(kwargs))
        self.time_warp = float(time_warp)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.mask_value = mask_value
        self.seed = seed
        part_seeds = [None if seed is None else seed + offset for offset in range(3)]
        self.parts = []
        if self.time_warp > 0:
            self.parts.append(TimeWarp(self.time_warp, seed=part_seeds[0]))
        if self.freq_masks > 0:
            self.parts.append(
                FrequencyMasking(self.freq_masks, self.freq_width, mask_value, seed=part_seeds[1])
            )
        if self.time_masks > 0:
            self.parts.append(TimeMasking(self.time_masks, self.time_width, mask_value, seed=part_seeds[2]))

    def build(self, input_shape):
        for part in self.parts:
            part.build(input_shape)

    def call(self, inputs, training=None):
        for part in self.parts:
            inputs = part(inputs, training=training)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            time_warp=self.time_warp,
            freq_masks=self.freq_masks,
            freq_width=self.freq_width,
            time_masks=self.time_masks,
            time_width=self.time_width,
            mask_value=self.mask_value,
            seed=self.seed,
        )
        return config
