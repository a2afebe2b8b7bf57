"""The one layer a streaming model adds: a ring buffer of the columns a layer reads along time.

A streaming model (:mod:`coughclf.streaming.convert`) receives each hop's new columns of
every time-looking layer's input and keeps, as explicit state, the older columns the next
hops still need. :class:`StreamBuffer` joins the state and the new columns, hands out the
slices the wrapped layer reads, and returns the next state. It holds no variables: state
travels as model inputs and outputs, so a TFLite file has no resource variables.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="coughclf")
class StreamBuffer(keras.layers.Layer):
    """``[state, new] → [next_state, *pieces]`` along the time axis ``axis`` (``[new] → pieces``
    when ``state_columns`` is 0).

    The buffer is ``state`` (``state_columns`` columns from earlier hops) followed by
    ``new``; each piece is ``buffer[start:stop:step]`` along ``axis``, and the next state is
    the buffer's last ``state_columns`` columns. A piece of every ``step``-th column is cut as
    whole groups of ``step`` columns (the last completed with zeros), reshaped, and the first
    column of each group sliced out: TFLite's XNNPACK delegate runs pads, reshapes and plain
    slices, not a strided slice, whose fall-back kernel and the hand-overs around it cost
    kws_cnn's streaming model a third of its time.

    Example:
        >>> import numpy as np
        >>> buffer = StreamBuffer(axis=1, state_columns=3, slices=[(1, 5, 2), (2, 5, 1)])
        >>> state = np.array([[0.0, 1.0, 2.0]], "float32")
        >>> new = np.array([[3.0, 4.0]], "float32")
        >>> for part in buffer([state, new]):  # the next state, then each piece (one row each)
        ...     print(*np.asarray(part)[0].tolist())
        2.0 3.0 4.0
        1.0 3.0
        2.0 3.0 4.0
    """

    def __init__(self, axis, state_columns, slices, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.state_columns = int(state_columns)
        self.slices = [tuple(int(value) for value in piece) for piece in slices]

    def _slice(self, buffer, start, stop):
        index = [slice(None)] * len(buffer.shape)
        index[self.axis] = slice(start, stop)
        return buffer[tuple(index)]

    def _cut(self, buffer, start, stop, step):
        if step == 1:
            return self._slice(buffer, start, stop)
        # Every step-th column as whole groups of step columns, reshaped, their first column sliced out:
        # runtimes run that faster than a strided slice. The last group is completed with zeros.
        count = len(range(start, stop, step))
        block = self._slice(buffer, start, start + (count - 1) * step + 1)
        padding = [[0, 0]] * len(block.shape)
        padding[self.axis] = [0, step - 1]
        shape = list(block.shape)
        grouped = ops.reshape(ops.pad(block, padding), shape[:self.axis] + [count, step] + shape[self.axis + 1:])
        index = [slice(None)] * len(grouped.shape)
        index[self.axis + 1] = slice(0, 1)
        return ops.reshape(grouped[tuple(index)], shape[:self.axis] + [count] + shape[self.axis + 1:])

    def call(self, inputs):
        buffer = ops.concatenate(inputs, axis=self.axis) if self.state_columns else inputs[0]
        pieces = [self._cut(buffer, *piece) for piece in self.slices]
        if not self.state_columns:
            return pieces
        length = buffer.shape[self.axis]
        return [self._slice(buffer, length - self.state_columns, length), *pieces]

    def compute_output_shape(self, input_shape):
        template = list(input_shape[-1])
        length = sum(shape[self.axis] for shape in input_shape)

        def shaped(columns):
            return tuple(template[:self.axis] + [columns] + template[self.axis + 1:])

        pieces = [shaped(len(range(start, min(stop, length), step))) for start, stop, step in self.slices]
        return [shaped(self.state_columns), *pieces] if self.state_columns else pieces

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "state_columns": self.state_columns,
                "slices": [list(piece) for piece in self.slices]}
