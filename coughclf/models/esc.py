"""ESC-10 from raw waveforms: a 1D CNN and a CNN + Transformer encoder.

Report 4 (spec section 4). Input: 1 s windows of 16,000 samples at 16 kHz (9 windows
per clip, each with the clip's label). These models read the waveform itself: in
``"features"`` mode the input is a ``[batch, 16000]`` waveform tensor, in
``"waveform"`` mode the same plus optional waveform augmentation inside the model.
Ten classes.
"""

import keras

from coughclf.errors import CoughclfError
from coughclf.layers.blocks import (POSITIONAL_ENCODINGS, ClassTokens, PositionalEncoding,
                                    TransformerEncoderLayer)
from coughclf.models import register_model
from coughclf.models.common import classifier_head, classifier_inputs, padded_conv1d

REPORT = "ESC-10 with a raw-waveform 1D CNN and a CNN + Transformer (spec section 4)"
ESC_INPUT = {"feature_shape": (16000,), "clip_seconds": 1.0, "sample_rate": 16000, "frontend": None}
DEFAULTS = {"input_mode": "features", "num_classes": 10, **ESC_INPUT}

# (filters, kernel, stride, padding, pooling) of the three convolution blocks
CNN_BLOCKS = ((128, 7, 2, 3, "max"), (64, 5, 2, 2, "max"), (32, 3, 2, 1, "average"))


def _waveform_cnn(waveform, dropout, activation):
    """Three Conv1d → BatchNorm → Dropout → Pool blocks: ``[16000]`` → ``[250, 32]`` (steps, channels)."""
    x = keras.layers.Reshape((waveform.shape[1], 1), name="waveform_channel")(waveform)
    for index, (filters, kernel_size, stride, padding, pooling) in enumerate(CNN_BLOCKS, start=1):
        x = padded_conv1d(x, filters, kernel_size, strides=stride, padding=padding,
                          activation=activation, name=f"block{index}_conv")
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"block{index}_bn")(x)
        x = keras.layers.Dropout(dropout, name=f"block{index}_dropout")(x)
        pool = keras.layers.MaxPooling1D if pooling == "max" else keras.layers.AveragePooling1D
        x = pool(2, name=f"block{index}_pool")(x)
    return x


@register_model("esc_cnn1d", report=f"{REPORT}, 1D CNN", report_params=128_682, defaults=DEFAULTS)
def esc_cnn1d(input_mode="features", num_classes=10, dropout=0.5, activation=None, **input_options):
    """Raw-waveform 1D CNN of the ESC-10 report — 128,682 trainable parameters.

    Spec section 4, "1D CNN": Conv1d(1→128, k7, s2, p3) → BatchNorm → Dropout 0.5 →
    MaxPool1d(2) → ``[4000, 128]``; Conv1d(128→64, k5, s2, p2) → BatchNorm → Dropout →
    MaxPool1d(2) → ``[1000, 64]``; Conv1d(64→32, k3, s2, p1) → BatchNorm → Dropout →
    AvgPool1d(2) → ``[250, 32]``; Flatten 8,000 → Linear 10 → Softmax.

    The report's table has no activation after the convolutions (only the max pools are
    non-linear); ``activation`` (default ``None``, as reported) adds one, e.g. ``"relu"``.

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("esc_cnn1d"))
        128682
    """
    inputs, waveform = classifier_inputs(input_mode, **{**ESC_INPUT, **input_options})
    x = _waveform_cnn(waveform, dropout, activation)
    outputs = classifier_head(keras.layers.Flatten(name="flatten")(x), num_classes)
    return keras.Model(inputs, outputs, name="esc_cnn1d")


@register_model("esc_conv_transformer", report=f"{REPORT}, CNN + Transformer", report_params=2_607_778,
                param_difference=250,
                difference_reason="learned CLS token (250 weights, an nn.Parameter the report's "
                                  "summary tool did not count)",
                defaults={**DEFAULTS, "num_heads": 4})
def esc_conv_transformer(input_mode="features", num_classes=10, num_heads=4, positional_encoding="none",
                         cnn_dropout=0.5, dropout=0.1, ffn_dim=2048, num_layers=2, activation=None,
                         **input_options):
    """CNN + Transformer encoder of the ESC-10 report — 2,607,778 (+250 CLS) for 1, 2 and 4 heads.

    Spec section 4, "CNN + Transformer": the 1D CNN of :func:`esc_cnn1d` up to its
    AvgPool → ``[250, 32]`` → transposed to 32 tokens of width 250 (each channel's
    250 pooled steps is a token, as the report's ``[32, 250]``) → a learned CLS token
    prepended (:class:`~coughclf.layers.blocks.ClassTokens`; 250 parameters the report's
    summary tool did not count) → optional positional encoding (``"none"`` — default,
    as the report states none and its count has none — ``"sinusoidal"`` or
    ``"learned"``) → two post-norm encoder layers
    (:class:`~coughclf.layers.blocks.TransformerEncoderLayer`: 251,000 attention
    parameters for any head count, FFN 250→2048→250 ReLU, dropout 0.1; 1,278,298 each)
    → Linear(250→10) on the CLS output → Softmax.

    **Head split**: 250 is not divisible by 4, so heads get widths 63/63/62/62 (125/125
    for two heads, 250 for one): Q, K, V and output projections stay 250 × 250 and the
    count stays 251,000 (see :class:`~coughclf.layers.blocks.SplitHeadSelfAttention`).

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("esc_conv_transformer", num_heads=2)) == 2_607_778 + 250
        True
    """
    if positional_encoding not in POSITIONAL_ENCODINGS:
        raise CoughclfError(f"unknown positional_encoding {positional_encoding!r}; choose one of "
                            f"{', '.join(POSITIONAL_ENCODINGS)}")
    inputs, waveform = classifier_inputs(input_mode, **{**ESC_INPUT, **input_options})
    x = _waveform_cnn(waveform, cnn_dropout, activation)
    x = keras.layers.Permute((2, 1), name="channels_as_tokens")(x)
    x = ClassTokens(name="cls_token")(x)
    if positional_encoding != "none":
        x = PositionalEncoding(positional_encoding, name="positional_encoding")(x)
    for index in range(1, num_layers + 1):
        x = TransformerEncoderLayer(x.shape[-1], num_heads, ffn_dim=ffn_dim, dropout=dropout,
                                    name=f"encoder{index}")(x)
    x = keras.layers.Cropping1D((0, x.shape[1] - 1), name="cls_step")(x)
    cls_output = keras.layers.Flatten(name="cls_output")(x)
    return keras.Model(inputs, classifier_head(cls_output, num_classes), name="esc_conv_transformer")
