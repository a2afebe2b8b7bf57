"""A flatten-over-time + dense head, streamed as per-column partial products instead of buffered columns.

``Dense(Flatten(x))`` over a window of ``N`` columns is the sum over the columns of each
column times its own block of the kernel: ``y = Σ_j K_j · x_j + b``. The stream projects each
new column once onto all ``N`` blocks (:class:`ColumnProjection`, as many multiplications as
the dense layer makes per window), keeps these ``N · units`` numbers per column instead of
the column itself (kws_cnn: 40 floats instead of 1,152), and adds the window's diagonal —
column ``j``'s projection onto block ``j`` — with the bias and the activation
(:class:`ProjectionSum`). Same numbers as the window model up to float rounding.
"""

import keras
import numpy as np
from keras import ops


def column_kernels(kernel, window_shape, axis):
    """The dense ``kernel`` ``[prod(window_shape), units]`` of a flattened window (time on ``axis`` of
    ``[batch, *window_shape]``) as ``[features per column, columns * units]``: column ``j``'s block next
    to the others."""
    units = kernel.shape[-1]
    blocks = np.moveaxis(np.asarray(kernel).reshape(*window_shape, units), axis - 1, 0)
    columns = blocks.shape[0]
    return np.moveaxis(blocks.reshape(columns, -1, units), 0, 1).reshape(-1, columns * units)


@keras.saving.register_keras_serializable(package="coughclf")
class ColumnProjection(keras.layers.Layer):
    """``[batch, …, n columns on axis, …]`` → ``[batch, n, columns, units]``: each column projected
    onto every column's block of a flattened dense kernel (:func:`column_kernels`)."""

    def __init__(self, units, columns, axis, **kwargs):
        super().__init__(**kwargs)
        self.units, self.columns, self.axis = int(units), int(columns), int(axis)

    def build(self, input_shape):
        features = int(np.prod([size for index, size in enumerate(input_shape) if index not in (0, self.axis)]))
        self.kernel = self.add_weight(shape=(features, self.columns * self.units), initializer="zeros",
                                      name="kernel")

    def call(self, inputs):
        columns = ops.moveaxis(inputs, self.axis, 1)
        count = columns.shape[1]
        projected = ops.matmul(ops.reshape(columns, (-1, count, self.kernel.shape[0])), self.kernel)
        return ops.reshape(projected, (-1, count, self.columns, self.units))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[self.axis], self.columns, self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "columns": self.columns, "axis": self.axis}


@keras.saving.register_keras_serializable(package="coughclf")
class ProjectionSum(keras.layers.Layer):
    """``[batch, columns, columns, units]`` (the window's columns, each projected onto every block) →
    ``activation(Σ_j x[:, j, j] + bias)``: the dense layer's output on the flattened window."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        columns, units = input_shape[1], input_shape[-1]
        self.diagonal = ops.convert_to_tensor(np.eye(columns, dtype="float32")[:, :, None])
        self.bias = self.add_weight(shape=(units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return self.activation(ops.sum(inputs * self.diagonal, axis=(1, 2)) + self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "activation": keras.activations.serialize(self.activation)}
