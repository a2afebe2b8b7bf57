"""One fixed window of a clip, as a layer: how a model trained on windows hears a whole clip.

A run with ``[data] windows = n`` trains and scores windows of ``window_seconds`` cut
from each clip at evenly spaced places (:func:`coughclf.pipeline._window_starts`), and
its clip probability is the mean over its windows. Inside one graph that takes the clip
(an ensemble of models that hear different lengths, :mod:`coughclf.ensemble`), one
:class:`ClipWindow` per window cuts the same samples; a plain slice, so it serialises
(no ``Lambda``) and converts to TFLite's builtin ``STRIDED_SLICE``.

Example::

    import keras
    from coughclf.layers.windows import ClipWindow, window_starts

    clip = keras.Input((80000,))                               # 5 s at 16 kHz
    starts = window_starts(80000, 40000, 3)                    # [0, 20000, 40000]
    windows = [ClipWindow(start, 40000)(clip) for start in starts]
"""

import keras


def window_starts(clip_samples, window_samples, count):
    """The first sample of each of ``count`` windows evenly spaced from the clip's start to its end,
    rounded as the pipeline rounds them (a single window starts at 0)."""
    last_start = max(clip_samples - window_samples, 0)
    if count == 1:
        return [0]
    return [int(round(last_start * index / (count - 1))) for index in range(count)]


@keras.saving.register_keras_serializable(package="coughclf")
class ClipWindow(keras.layers.Layer):
    """``clip[:, start:start + length]`` of a ``[batch, samples]`` waveform."""

    def __init__(self, start, length, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)
        self.length = int(length)

    def call(self, clip):
        return clip[:, self.start:self.start + self.length]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "length": self.length}
