"""What the LiteRT interpreter computes with the released yamnet.tflite, emulated on coughclf's YAMNet layers.

The TFLite model is "dynamic-range" quantised: its weights are int8, and each operator with int8
weights (the mel projection, pointwise and depthwise convolutions of layers 4-14, the classifier)
quantises its float input to int8 on the fly, asymmetrically (a scale and a zero point from the
input's minimum and maximum): per row for the mel projection, the 1 x 1 convolutions and the
classifier (each frame, pixel or patch), per tensor (each patch) for the depthwise convolutions. The float
layers (layer1's convolution, the depthwise convolutions of layers 2-3) are float. Emulating that
on the Keras layers, loaded from the same file, reproduces each operator of the interpreter to
float round-off, which shows that the differences of the float Keras model are this quantisation.
"""

import numpy as np
from keras import ops

from coughclf.models.yamnet import LAYERS


def quantised(values, axis):
    """``values`` through asymmetric int8 quantisation with the range of each slice (``axis=-1``:
    each row of the last axis; ``(1, 2, 3)``: each example of a batch), as TFLite's hybrid kernels
    quantise their inputs."""
    values = np.asarray(values, np.float32)
    low = np.minimum(values.min(axis=axis, keepdims=True), 0.0)
    high = np.maximum(values.max(axis=axis, keepdims=True), 0.0)
    scale = np.where(high > low, (high - low) / 255.0, 1.0)
    zero_point = np.round(-128.0 - low / scale)
    levels = np.clip(np.round(values / scale) + zero_point, -128, 127)
    return ((levels - zero_point) * scale).astype(np.float32)


def emulated_patch_scores(model, mel_matrix, patch_waveforms):
    """``[patches, 521]`` scores of 0.975 s waveforms ``[patches, 15600]`` as the interpreter computes them.

    ``model``: coughclf's YAMNet with the file's weights; ``mel_matrix``: the file's own int8 mel
    matrix ``[64, 257]``, dequantised.
    """
    frontend = model.get_layer("yamnet_log_mel")
    left, right = frontend.padding(patch_waveforms.shape[1])
    magnitude = np.sqrt(np.asarray(frontend.power_spectrum(ops.pad(patch_waveforms, [[0, 0], [left, right]]))))
    x = np.log(quantised(magnitude, axis=-1) @ mel_matrix.T + frontend.log_offset)[..., None]

    def convolved(name, values):
        return np.maximum(np.asarray(model.get_layer(f"{name}_bn")(model.get_layer(name)(values), training=False)), 0)

    x = convolved("layer1_conv", x)
    for index in range(2, len(LAYERS) + 1):
        x = convolved(f"layer{index}_depthwise_conv", x if index <= 3 else quantised(x, axis=(1, 2, 3)))
        x = convolved(f"layer{index}_pointwise_conv", quantised(x, axis=-1))
    embeddings = x.mean(axis=(1, 2))
    logits = np.asarray(model.get_layer("dense")(quantised(embeddings, axis=-1)))
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
