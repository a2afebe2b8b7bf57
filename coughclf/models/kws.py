"""Spoken digits ("zero" … "nine"): baseline CNN, CRNN, parallel CNN ‖ BiLSTM.

Report 2 (spec section 2). Input: 1 s, 128 log-mel bands × 44 frames; features are
time-major ``[batch, 44, 128]``. The report computed them at 22,050 Hz with hop 512;
in waveform mode at 16 kHz we use n_fft 1024 and hop 368, which gives the same
1 + 16000 // 368 = 44 frames per second (23 ms hop, as the report's 23.2 ms). Ten
classes, softmax outputs.

``time_padding`` (kws_cnn, kws_crnn): the report pads every convolution by 2 frames at both
ends of the time axis (PyTorch ``padding=2``). ``time_padding=0`` pads the mel axis only, so
that no layer sees the window's edges and the model streams exactly
(:mod:`coughclf.streaming`); it needs more frames than the report's 44 (kws_cnn: 46; at
1 s, ``[frontend] hop_length = 160, center = false`` gives 94, and the report's flatten
size: 143,242 parameters).
"""

import keras

from coughclf.errors import CoughclfError
from coughclf.layers.blocks import InputProjectedLSTM
from coughclf.models import register_model
from coughclf.models.common import (classifier_head, classifier_inputs, lstm_bias_difference,
                                    padded_conv1d, padded_conv2d, to_image)

REPORT = "Spoken digits, Speech Commands subset (spec section 2)"
DIGITS_INPUT = {
    "feature_shape": (44, 128),
    "clip_seconds": 1.0,
    "sample_rate": 16000,
    "frontend": {"n_fft": 1024, "hop_length": 368, "n_mels": 128},
}
DEFAULTS = {"input_mode": "features", "num_classes": 10, **DIGITS_INPUT}


CRNN_DIFFERENCE, CRNN_REASON = lstm_bias_difference(96)
PARALLEL_DIFFERENCE, PARALLEL_REASON = lstm_bias_difference(128, directions=2)


def _check_frames(model_name, tensor, time_axis, needed, layer_name, time_padding):
    """``tensor``, or a clear error where unpadded convolutions and pools leave ``layer_name`` fewer
    than the ``needed`` frames it reads (Keras' own error names no fix)."""
    if tensor.shape[time_axis] is not None and tensor.shape[time_axis] < needed:
        raise CoughclfError(f"{model_name}: with time_padding={time_padding} only {tensor.shape[time_axis]} frames "
                            f"reach {layer_name}, which reads {needed}; give the model more frames (a shorter "
                            "[frontend] hop_length or a longer clip) or time_padding=2 (the report's)")
    return tensor


@register_model("kws_cnn", report=f"{REPORT}, baseline CNN", report_params=143_242, defaults=DEFAULTS)
def kws_cnn(input_mode="features", num_classes=10, time_padding=2, **input_options):
    """Baseline CNN of the spoken-digits report — 143,242 trainable parameters.

    Spec section 2, "Baseline CNN": four blocks Conv2d(k3, padding 2) → ReLU →
    MaxPool2d(2), channels 1→16→32→64→128; ``[128, 44, 1]`` → ``[65, 23, 16]`` →
    ``[33, 12, 32]`` → ``[17, 7, 64]`` → ``[9, 4, 128]`` → Flatten 4,608 → Linear 10 →
    Softmax. ``time_padding``: frames of zeros at each end of the time axis (see the module).

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("kws_cnn"))
        143242
    """
    inputs, features = classifier_inputs(input_mode, **{**DIGITS_INPUT, **input_options})
    x = to_image(features)
    for index, filters in enumerate((16, 32, 64, 128), start=1):
        x = _check_frames("kws_cnn", x, 2, 3 - 2 * time_padding, f"block{index}_conv", time_padding)
        x = padded_conv2d(x, filters, 3, padding=(2, time_padding), activation="relu", name=f"block{index}_conv")
        x = _check_frames("kws_cnn", x, 2, 2, f"block{index}_pool", time_padding)
        x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    outputs = classifier_head(keras.layers.Flatten(name="flatten")(x), num_classes)
    return keras.Model(inputs, outputs, name="kws_cnn")


@register_model("kws_crnn", report=f"{REPORT}, CRNN", report_params=1_942_346,
                param_difference=CRNN_DIFFERENCE, difference_reason=CRNN_REASON, defaults=DEFAULTS)
def kws_crnn(input_mode="features", num_classes=10, time_padding=2, **input_options):
    """CRNN of the spoken-digits report — 1,942,346 parameters in the report, 1,941,962 here.

    Spec section 2, "CRNN": the 128 mel bands are the channels of Conv1d over the 44
    frames (time-major features are already ``[frames, channels]``):
    Conv1d(128→128, k5, pad 2) → BatchNorm → ReLU → MaxPool1d(2) → ``[22, 128]``; the
    same → ``[11, 128]``; Conv1d(128→256, k5, pad 2) → BatchNorm → ReLU → MaxPool1d(2) →
    ``[5, 256]``; an LSTM (input 5, hidden 96) → ``[256, 96]``; Flatten 24,576 → Linear 64
    → ReLU → Linear 10 → Softmax. ``time_padding``: frames of zeros at each end of the time
    axis (see the module).

    **The LSTM runs across the 256 channels as its sequence**, each step seeing the 5
    pooled frames of one channel — not across time. That is what the report's model
    did (its LSTM input size is 5); it is reproduced as given. The Keras LSTM has a
    single bias per gate set: 384 fewer parameters than PyTorch (4 · 96).

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("kws_crnn")) == 1_942_346 - 384
        True
    """
    inputs, x = classifier_inputs(input_mode, **{**DIGITS_INPUT, **input_options})
    for index, filters in enumerate((128, 128, 256), start=1):
        x = _check_frames("kws_crnn", x, 1, 5 - 2 * time_padding, f"block{index}_conv", time_padding)
        x = padded_conv1d(x, filters, 5, padding=time_padding, name=f"block{index}_conv")
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"block{index}_bn")(x)
        x = keras.layers.ReLU(name=f"block{index}_relu")(x)
        x = _check_frames("kws_crnn", x, 1, 2, f"block{index}_pool", time_padding)
        x = keras.layers.MaxPooling1D(2, name=f"block{index}_pool")(x)
    x = keras.layers.Permute((2, 1), name="channels_as_sequence")(x)
    x = InputProjectedLSTM(96, return_sequences=True, name="lstm")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    return keras.Model(inputs, classifier_head(x, num_classes), name="kws_crnn")


@register_model("kws_parallel_cnn_lstm", report=f"{REPORT}, parallel CNN ‖ LSTM",
                report_params=260_042, param_difference=PARALLEL_DIFFERENCE,
                difference_reason=PARALLEL_REASON, defaults=DEFAULTS)
def kws_parallel_cnn_lstm(input_mode="features", num_classes=10, **input_options):
    """Parallel CNN ‖ BiLSTM of the spoken-digits report — 260,042 in the report, 259,018 here.

    Spec section 2, "Parallel CNN ‖ LSTM". CNN branch: four blocks Conv2d(kernel (3, 1))
    → BatchNorm → ReLU → MaxPool2d, channels 1→16→32→64→64, pools 2, 2, 2, 4:
    ``[128, 44, 1]`` → ``[63, 22, 16]`` → ``[30, 11, 32]`` → ``[14, 5, 64]`` →
    ``[3, 1, 64]``, flatten 192. RNN branch: MaxPool2d((4, 2)) on the input →
    ``[32, 22, 1]`` → a bidirectional LSTM (input 22, hidden 128) over the 32 pooled
    mel bands → ``[32, 256]``, flatten 8,192. Concatenate 8,384 → Linear 10 → Softmax.
    The Keras LSTM has a single bias per gate set: 1,024 fewer parameters (4 · 128 × 2).

    Example:
        >>> from coughclf.models import build
        >>> from coughclf.models.common import trainable_params
        >>> trainable_params(build("kws_parallel_cnn_lstm")) == 260_042 - 1_024
        True
    """
    inputs, features = classifier_inputs(input_mode, **{**DIGITS_INPUT, **input_options})
    image = to_image(features)

    x = image
    for index, (filters, pool) in enumerate(((16, 2), (32, 2), (64, 2), (64, 4)), start=1):
        x = padded_conv2d(x, filters, (3, 1), name=f"cnn_block{index}_conv")
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"cnn_block{index}_bn")(x)
        x = keras.layers.ReLU(name=f"cnn_block{index}_relu")(x)
        x = keras.layers.MaxPooling2D(pool, name=f"cnn_block{index}_pool")(x)
    cnn_branch = keras.layers.Flatten(name="cnn_flatten")(x)

    x = keras.layers.MaxPooling2D((4, 2), name="rnn_pool")(image)
    x = keras.layers.Reshape(x.shape[1:3], name="bands_as_sequence")(x)
    x = keras.layers.Bidirectional(InputProjectedLSTM(128, return_sequences=True), name="bilstm")(x)
    rnn_branch = keras.layers.Flatten(name="rnn_flatten")(x)

    x = keras.layers.Concatenate(name="concatenate")([cnn_branch, rnn_branch])
    return keras.Model(inputs, classifier_head(x, num_classes), name="kws_parallel_cnn_lstm")
