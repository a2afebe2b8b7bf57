"""The shared-input bidirectional Elman RNN of the lightweight DeepSpeech2 (report 5).

Both directions read the input through one matrix and bias; each has its own
recurrent matrix; the layer returns the sum of the two directions::

    h→_t = g(W x_t + U→ h→_{t−1} + b)      h←_t = g(W x_t + U← h←_{t+1} + b)      y_t = h→_t + h←_t

so a layer with input width d and h units has ``d·h + h + 2·h²`` parameters.

Padded batches: with a mask (Keras mask propagation, e.g. from
:class:`coughclf.layers.sequence.SequenceMask` or ``keras.layers.Masking``), each
example is run over its own valid frames only: the backward direction starts at the
example's own last valid frame, outputs at valid frames equal those of the example
run alone unpadded, and outputs at padded frames are zero. The mask must mark a
prefix of each sequence (padding at the end), as batch padding does.

Example::

    import keras
    from coughclf.layers.rnn import SharedInputBiRNN

    features = keras.Input((None, 64))
    outputs = SharedInputBiRNN(128)(keras.layers.Masking()(features))   # [batch, frames, 128]
    keras.Model(features, outputs).count_params()                      # 64*128 + 128 + 2*128**2
"""

import keras
from keras import ops


def reverse_within_lengths(sequences, lengths):
    """Reverse each ``[steps, ...]`` sequence's first ``lengths[i]`` steps; padded steps stay put."""
    steps = ops.expand_dims(ops.arange(ops.shape(sequences)[1], dtype="int32"), 0)
    lengths = ops.expand_dims(ops.cast(lengths, "int32"), 1)
    indices = ops.where(steps < lengths, lengths - 1 - steps, steps)
    indices = ops.reshape(indices, ops.shape(indices) + (1,) * (len(sequences.shape) - 2))
    return ops.take_along_axis(sequences, indices, axis=1)


@keras.saving.register_keras_serializable(package="coughclf")
class SharedInputBiRNN(keras.layers.Layer):
    """Bidirectional vanilla RNN, one input kernel and bias for both directions, outputs summed.

    Args:
        units: hidden size h (the output width).
        activation: the nonlinearity g, any Keras activation name (``"relu"`` as in
            DeepSpeech2, or ``"tanh"``).
        kernel_initializer: as in ``keras.layers.SimpleRNN``.
        recurrent_initializer: as in ``keras.layers.SimpleRNN``.
        bias_initializer: as in ``keras.layers.SimpleRNN``.

    Input ``[batch, steps, d]`` (optionally masked), output ``[batch, steps, units]``.
    Both directions run in one ``keras.ops.scan``: the backward one over each
    sequence reversed within its length, so that it starts at its own last frame.
    """

    def __init__(self, units, activation="relu", kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)
        self.recurrent_kernel_forward = self.add_weight(
            name="recurrent_kernel_forward", shape=(self.units, self.units),
            initializer=self.recurrent_initializer)
        self.recurrent_kernel_backward = self.add_weight(
            name="recurrent_kernel_backward", shape=(self.units, self.units),
            initializer=self.recurrent_initializer)

    def call(self, inputs, mask=None):
        batch, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        projected = ops.matmul(inputs, self.kernel) + self.bias  # W x + b, shared by both directions
        if mask is None:
            lengths = ops.full((batch,), steps, dtype="int32")
            valid = ops.ones((batch, steps), dtype="bool")
        else:
            valid = ops.cast(mask, "bool")
            lengths = ops.sum(ops.cast(valid, "int32"), axis=1)
        # [steps, batch, 2·units + 1]: forward inputs, the sequence reversed within its length for
        # the backward direction, and a last channel that says whether the step is valid. One
        # scanned tensor, because Keras' TensorFlow scan fails on several inputs of unknown length.
        valid = ops.cast(valid[:, :, None], projected.dtype)
        scanned = ops.concatenate([projected, reverse_within_lengths(projected, lengths), valid], axis=-1)
        scanned = ops.transpose(scanned, (1, 0, 2))
        # Both directions advance in one matmul with the block-diagonal [[U→, 0], [0, U←]]:
        # fewer, larger ops per step is what makes a recurrent loop fast.
        zeros = ops.zeros((self.units, self.units), dtype=projected.dtype)
        recurrent = ops.concatenate([
            ops.concatenate([self.recurrent_kernel_forward, zeros], axis=1),
            ops.concatenate([zeros, self.recurrent_kernel_backward], axis=1)], axis=0)

        def step(state, inputs_t):
            # Past an example's length state and output stay zero: padded frames output nothing.
            state = self.activation(inputs_t[:, :-1] + ops.matmul(state, recurrent)) * inputs_t[:, -1:]
            return state, state

        initial = ops.zeros((batch, 2 * self.units), dtype=projected.dtype)
        _, outputs = ops.scan(step, initial, scanned)
        outputs = ops.transpose(outputs, (1, 0, 2))
        forward, backward = outputs[..., :self.units], outputs[..., self.units:]
        return forward + reverse_within_lengths(backward, lengths)

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
