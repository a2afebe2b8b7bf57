"""Variable-length sequences in zero-padded batches: lengths through strided ops, and masks.

A batch of utterances is padded to its longest one and carries each example's length.
Every strided operation (a centred STFT, a strided convolution) changes the lengths by
the same formula as the frame count, so :class:`SequenceLengths` maps them through it,
and :class:`SequenceMask` zeroes each example's padded frames and attaches the Keras
mask that masking-aware layers downstream (BatchNormalization's moments, the
recurrent layers) consume.

Example::

    import keras
    from coughclf.layers.sequence import SequenceLengths, SequenceMask

    features = keras.Input((None, 80))                # [batch, frames, features]
    lengths = keras.Input((), dtype="int32")          # valid frames per example
    conv_lengths = SequenceLengths(kernel_size=11, stride=2, padding=5)(lengths)
    masked = SequenceMask()([features, lengths])      # padded frames are 0, mask attached
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="coughclf")
class SequenceLengths(keras.layers.Layer):
    """Output lengths of a 1-D windowed op: ``floor((length + 2·padding − kernel_size) / stride) + 1``.

    This is the frame count of a convolution with ``padding`` zeros on each side and a
    ``"valid"`` window, and of a centred STFT (``kernel_size = n_fft``,
    ``padding = n_fft // 2``, ``stride = hop_length``: ``1 + length // hop_length``).
    Lengths too short for one window give 0.
    """

    def __init__(self, kernel_size, stride=1, padding=0, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.padding = int(padding)

    def call(self, lengths):
        padded = ops.cast(lengths, "int32") + 2 * self.padding - self.kernel_size
        return ops.where(padded >= 0, padded // self.stride + 1, 0)

    def compute_output_spec(self, lengths):
        return keras.KerasTensor(lengths.shape, dtype="int32")

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding}


def length_mask(lengths, sequences):
    """Boolean ``[batch, steps]``: True at each example's first ``lengths[i]`` steps of ``sequences``.

    Built from ``sequences`` itself (a running count along its time axis) rather than
    from its static shape, so it also works on symbolic tensors with unknown steps.
    """
    first_channel = (slice(None), slice(None)) + (0,) * (len(sequences.shape) - 2)
    positions = ops.cumsum(ops.ones_like(sequences, dtype="int32")[first_channel], axis=1)
    return positions <= ops.expand_dims(ops.cast(lengths, "int32"), 1)


@keras.saving.register_keras_serializable(package="coughclf")
class SequenceMask(keras.layers.Layer):
    """``[sequences [batch, steps, ...], lengths [batch]]`` → sequences zeroed past each length, masked.

    Zeroing matters for the layers that do not read masks: a convolution over a padded
    batch then sees exactly the zeros it would pad an example run alone with. The
    returned tensor carries the Keras mask ``steps < length`` unless ``attach_mask`` is
    False (before layers that cannot carry a mask, such as padding and convolutions).
    """

    def __init__(self, attach_mask=True, **kwargs):
        super().__init__(**kwargs)
        self.attach_mask = bool(attach_mask)
        self.supports_masking = True

    def call(self, inputs):
        sequences, lengths = inputs
        mask = length_mask(lengths, sequences)
        mask = ops.reshape(mask, ops.shape(mask) + (1,) * (len(sequences.shape) - 2))
        return ops.where(mask, sequences, ops.zeros_like(sequences))

    def compute_mask(self, inputs, mask=None):
        if not self.attach_mask:
            return None
        sequences, lengths = inputs
        return length_mask(lengths, sequences)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "attach_mask": self.attach_mask}
