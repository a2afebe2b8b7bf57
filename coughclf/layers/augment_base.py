"""The base of coughclf's augmentation layers and the helpers they share.

:class:`RandomAugmentation` is the identity unless ``training=True``; a subclass draws its
per-example parameters with ``sample_parameters`` and applies them with the deterministic
``transform``, so tests and other backends can replay exactly the same augmentation.
"""

import keras
from keras import ops

from coughclf.errors import CoughclfError
from coughclf.layers.frontend import float32_by_default

TINY = 1e-12

def gather_along_time(values, positions):
    """Per-example gather on axis 1 with int ``positions`` [batch, time] (clamped to range).

    Done as one row gather on the batch-flattened tensor, which is several
    times faster on CPU than take_along_axis (a gather_nd over broadcast indices).
    """
    shape = ops.shape(values)
    positions = ops.clip(positions, 0, shape[1] - 1)
    rows = positions + ops.arange(shape[0], dtype="int32")[:, None] * shape[1]
    return ops.take(ops.reshape(values, (-1, *shape[2:])), rows, axis=0)


def interpolate_along_time(values, positions):
    """Linear interpolation of ``values`` at fractional ``positions`` [batch, time] on axis 1.

    Positions are clamped to the valid range; callers zero what lies outside.
    """
    lower = ops.floor(positions)
    fraction = positions - lower
    lower = ops.cast(lower, "int32")
    if len(values.shape) > 2:
        fraction = fraction[:, :, None]
    below = gather_along_time(values, lower)
    above = gather_along_time(values, lower + 1)
    return below + fraction * (above - below)


def mix_at_snr(signal, noise, snr_db, apply):
    """``signal + noise`` with the noise scaled to ``snr_db`` (per example) where ``apply``.

    SNR is the ratio of mean powers over the whole example; a silent signal
    gets no noise (its SNR is undefined), which keeps padding silent.
    """
    signal_power = ops.mean(signal * signal, axis=1, keepdims=True)
    noise_power = ops.mean(noise * noise, axis=1, keepdims=True)
    target = noise_power * ops.power(10.0, snr_db[:, None] / 10.0)
    scale = ops.sqrt(signal_power / ops.maximum(target, TINY))
    return signal + ops.cast(apply[:, None], signal.dtype) * scale * noise


def check_range(layer_name, option, low_high):
    """Validate a ``(low, high)`` option and return it as two floats."""
    try:
        low, high = (float(value) for value in low_high)
    except (TypeError, ValueError):
        raise CoughclfError(f"{layer_name}: {option}={low_high!r} must be a pair (low, high)") from None
    if low > high:
        raise CoughclfError(f"{layer_name}: {option}={low_high!r} has low > high; swap them")
    return low, high


def check_probability(layer_name, probability):
    probability = float(probability)
    if not 0.0 <= probability <= 1.0:
        raise CoughclfError(f"{layer_name}: probability={probability} must lie in [0, 1]")
    return probability


class RandomAugmentation(keras.layers.Layer):
    """Base of the augmentation layers: identity unless ``training=True``.

    Subclasses define ``sample_parameters(inputs) -> dict`` (random, per
    example) and ``transform(inputs, parameters)`` (deterministic).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**float32_by_default(kwargs))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, minval=low, maxval=high, seed=self.seed_generator)

    def chosen(self, batch, probability):
        """Per-example booleans, True with ``probability``."""
        return self.uniform((batch,)) < probability

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.transform(inputs, self.sample_parameters(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed)
        return config
