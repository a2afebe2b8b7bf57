"""The model's first layer when the pipeline yields 16-bit PCM (``make_dataset(audio_dtype="int16")``)."""

import keras
from keras import ops

# int16 full scale: samples map to [-1, 1), as librosa and soundfile read them.
_FULL_SCALE = 32768.0


@keras.saving.register_keras_serializable(package="coughclf")
class PCMToFloat(keras.layers.Layer):
    """16-bit PCM samples -> float32 in [-1, 1), inside the model.

    The pipeline then moves half the bytes per clip and the conversion fuses into
    the front end's first operation when the model is compiled. Any input shape;
    float inputs are scaled the same way (values already in the int16 range).
    """

    def call(self, inputs):
        return ops.cast(inputs, self.compute_dtype) * (1.0 / _FULL_SCALE)

    def compute_output_shape(self, input_shape):
        return input_shape
