"""COVID-19 cough screening on COUGHVID: small CNN, large CNN, CRNN, CRNN + attention.

Report 1 (spec section 1). Input: 10 s at 16 kHz, log-mel with n_fft 1024, hop 512,
128 mels → 313 frames; features are time-major ``[batch, 313, 128]`` and the models
view them as a ``[128 mels, 313 frames, 1]`` image (the report's ``[1, 128, 313]``).
Two classes (COVID-19 vs healthy), softmax outputs.
"""

import keras

from coughclf.layers.blocks import InputProjectedLSTM, TimeLinearPooling
from coughclf.models import register_model
from coughclf.models.common import (classifier_head, classifier_inputs, lstm_bias_difference,
                                    padded_conv2d, to_image)

REPORT = "COVID-19 cough screening on COUGHVID (spec section 1)"
COUGH_INPUT = {
    "feature_shape": (313, 128),
    "clip_seconds": 10.0,
    "sample_rate": 16000,
    "frontend": {"n_fft": 1024, "hop_length": 512, "n_mels": 128},
}
DEFAULTS = {"input_mode": "features", "num_classes": 2, **COUGH_INPUT}
LSTM_DIFFERENCE, LSTM_REASON = lstm_bias_difference(256, directions=2)

# (filters, conv stride, pool stride) of the large CNN's blocks, which the CRNNs reuse
LARGE_CNN_BLOCKS = ((16, 2, 2), (32, 2, 1), (64, 1, 1), (128, 1, 1))


def _conv_block(x, filters, kernel_size, conv_stride, pool_stride, dropout, name):
    """Conv2d → ReLU → MaxPool2d(2, pool_stride) → BatchNorm → Dropout, in the report's order."""
    x = padded_conv2d(x, filters, kernel_size, strides=conv_stride, activation="relu", name=f"{name}_conv")
    x = keras.layers.MaxPooling2D(2, strides=pool_stride, name=f"{name}_pool")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _large_cnn_features(features, dropout):
    """Blocks 1–4 of the large CNN: ``[128, 313, 1]`` → ``[8, 31, 128]`` (mels, frames, channels)."""
    x = to_image(features)
    for index, (filters, conv_stride, pool_stride) in enumerate(LARGE_CNN_BLOCKS, start=1):
        x = _conv_block(x, filters, 3, conv_stride, pool_stride, dropout, name=f"block{index}")
    return x


def _recurrent_sequence(x):
    """``[bands, steps, channels]`` → BiLSTM(256) → Tanh: ``[steps, 512]``.

    Each time step's vector is channels × frequency (channel-major), as PyTorch's
    ``[C, F, T] → [T, C·F]`` reshape. The LSTM is
    :class:`~coughclf.layers.blocks.InputProjectedLSTM`: ``keras.layers.LSTM``'s weights
    and function, with the input projection hoisted out of the time loop (the CPU
    training step's main cost; see ``coughclf bench train``).
    """
    bands, steps, channels = x.shape[1:]
    x = keras.layers.Permute((2, 3, 1), name="time_major")(x)
    x = keras.layers.Reshape((steps, channels * bands), name="sequence")(x)
    x = keras.layers.Bidirectional(InputProjectedLSTM(256, return_sequences=True), name="bilstm")(x)
    return keras.layers.Activation("tanh", name="tanh")(x)


def _time_pooled_head(x, num_classes):
    """Linear(T→1) across time + ReLU → Linear(num_classes) → Softmax."""
    x = TimeLinearPooling(name="time_pooling")(x)
    x = keras.layers.ReLU(name="time_pooling_relu")(x)
    return classifier_head(x, num_classes)


@register_model("cough_small_cnn", report=f"{REPORT}, small CNN table", report_params=4_682,
                defaults=DEFAULTS)
def cough_small_cnn(input_mode="features", num_classes=2, dropout=0.2, **input_options):
    """Small CNN of the COVID-19 cough report — 4,682 trainable parameters.

    Spec section 1, "Small CNN" table: four blocks Conv2d → ReLU → MaxPool2d(2) →
    BatchNorm → Dropout with convs 1→8 (k5, stride 2), 8→12, 12→12, 12→16 (k3);
    ``[128, 313, 1]`` → ``[31, 77, 8]`` → ``[14, 37, 12]`` → ``[6, 17, 12]`` →
    ``[2, 7, 16]`` → Flatten 224 → Linear 2 → Softmax.

    ``input_options`` (``feature_shape``, ``clip_seconds``, ``sample_rate``, ``frontend``,
    ``waveform_augmentation``, ``spec_augmentation``) go to
    :func:`coughclf.models.common.classifier_inputs`.

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("cough_small_cnn"))
        4682
    """
    inputs, features = classifier_inputs(input_mode, **{**COUGH_INPUT, **input_options})
    x = to_image(features)
    for index, (filters, kernel_size, conv_stride) in enumerate(((8, 5, 2), (12, 3, 1), (12, 3, 1),
                                                                (16, 3, 1)), start=1):
        x = _conv_block(x, filters, kernel_size, conv_stride, 2, dropout, name=f"block{index}")
    outputs = classifier_head(keras.layers.Flatten(name="flatten")(x), num_classes)
    return keras.Model(inputs, outputs, name="cough_small_cnn")


@register_model("cough_large_cnn", report=f"{REPORT}, large CNN table", report_params=161_122,
                defaults=DEFAULTS)
def cough_large_cnn(input_mode="features", num_classes=2, dropout=0.2, **input_options):
    """Large CNN of the COVID-19 cough report — 161,122 trainable parameters.

    Spec section 1, "Large CNN" table: blocks Conv2d(k3) → ReLU → MaxPool2d(k2, stride s)
    → BatchNorm → Dropout, convs 1→16 (stride 2), 16→32 (stride 2), 32→64, 64→128,
    pool strides 2, 1, 1, 1; ``[128, 313, 1]`` → ``[31, 78, 16]`` → ``[14, 37, 32]`` →
    ``[11, 34, 64]`` → ``[8, 31, 128]`` → Flatten 31,744 → Linear 2 → Softmax.

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("cough_large_cnn"))
        161122
    """
    inputs, features = classifier_inputs(input_mode, **{**COUGH_INPUT, **input_options})
    x = _large_cnn_features(features, dropout)
    outputs = classifier_head(keras.layers.Flatten(name="flatten")(x), num_classes)
    return keras.Model(inputs, outputs, name="cough_large_cnn")


@register_model("cough_crnn", report=f"{REPORT}, CRNN", report_params=2_724_226,
                param_difference=LSTM_DIFFERENCE, difference_reason=LSTM_REASON, defaults=DEFAULTS)
def cough_crnn(input_mode="features", num_classes=2, dropout=0.0, **input_options):
    """CRNN of the COVID-19 cough report — 2,724,226 parameters in the report, 2,722,178 here.

    Spec section 1, "CRNN": large-CNN blocks 1–4 (no dropout by default) →
    ``[8, 31, 128]`` → 31 time steps × 1,024 (channels × frequency) →
    bidirectional LSTM(256) → ``[31, 512]`` → Tanh → Linear(31→1) across time
    (:class:`~coughclf.layers.blocks.TimeLinearPooling`, 32) + ReLU → ``[512]`` →
    Linear 2 → Softmax. The Keras LSTM has a single bias per gate set: 2,048 fewer
    parameters than PyTorch's two (4 · 256 per direction).

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("cough_crnn")) == 2_724_226 - 2_048
        True
    """
    inputs, features = classifier_inputs(input_mode, **{**COUGH_INPUT, **input_options})
    x = _recurrent_sequence(_large_cnn_features(features, dropout))
    return keras.Model(inputs, _time_pooled_head(x, num_classes), name="cough_crnn")


@register_model("cough_crnn_attention", report=f"{REPORT}, CRNN + self-attention",
                report_params=4_562_818, param_difference=LSTM_DIFFERENCE,
                difference_reason=LSTM_REASON, defaults=DEFAULTS)
def cough_crnn_attention(input_mode="features", num_classes=2, dropout=0.0, num_heads=4,
                         **input_options):
    """CRNN + self-attention of the COVID-19 cough report — 4,562,818 in the report, 4,560,770 here.

    Spec section 1, "CRNN + self-attention": as :func:`cough_crnn` up to the Tanh →
    three Linear(512→512) producing Q, K and V (262,656 each) → multi-head attention,
    4 heads, embed 512, with its own input and output projections (Keras
    ``MultiHeadAttention(4, key_dim=128)``: 1,050,624, as PyTorch's
    ``nn.MultiheadAttention(512, 4)``) → ``[31, 512]`` → Linear(31→1) across time + ReLU
    → Linear 2 → Softmax. Keras LSTM's single bias: 2,048 fewer parameters.

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("cough_crnn_attention")) == 4_562_818 - 2_048
        True
    """
    inputs, features = classifier_inputs(input_mode, **{**COUGH_INPUT, **input_options})
    x = _recurrent_sequence(_large_cnn_features(features, dropout))
    width = x.shape[-1]
    query, key, value = (keras.layers.Dense(width, name=name)(x) for name in ("query", "key", "value"))
    x = keras.layers.MultiHeadAttention(num_heads, key_dim=width // num_heads, name="attention")(
        query, value, key=key)
    return keras.Model(inputs, _time_pooled_head(x, num_classes), name="cough_crnn_attention")
