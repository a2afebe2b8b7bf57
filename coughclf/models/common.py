"""Input plumbing and small blocks shared by every architecture module.

Every classifier builder accepts ``input_mode="features"|"waveform"`` and gets its
input and feature tensors from :func:`classifier_inputs`:

* ``"features"`` — the model's input *is* the feature tensor: a precomputed log-mel
  spectrogram ``[batch, frames, n_mels]`` (time-major, exactly what
  :class:`coughclf.layers.frontend.LogMelSpectrogram` outputs), or, for raw-waveform
  models, the waveform ``[batch, samples]``.
* ``"waveform"`` — the model takes a raw waveform ``[batch, clip_seconds * sample_rate]``
  and computes its features in-graph: waveform augmentation layers →
  ``LogMelSpectrogram(sample_rate, **frontend)`` → spectrogram augmentation layers.
  The augmentation layers are identity unless called with ``training=True``, so the
  same model trains with augmentation and exports without it.

Example — the body of a builder::

    inputs, features = classifier_inputs(
        input_mode, feature_shape=(313, 128), clip_seconds=10.0,
        frontend={"n_fft": 1024, "hop_length": 512, "n_mels": 128},
        waveform_augmentation=waveform_augmentation, spec_augmentation=spec_augmentation)
    x = to_image(features)                  # [batch, 128 mels, 313 frames, 1]
    x = padded_conv2d(x, 16, 3, strides=2)  # PyTorch Conv2d(1, 16, 3, stride=2)
    ...
    outputs = classifier_head(keras.layers.Flatten()(x), num_classes)
    return keras.Model(inputs, outputs, name="my_model")

PyTorch layers translate as: ``Conv(padding=p)`` → :func:`padded_conv2d` /
:func:`padded_conv1d` (explicit zero padding, then a ``"valid"`` convolution, because
Keras ``"same"`` pads asymmetrically under strides); ``MaxPool(k)`` → Keras
``MaxPooling*D(k)`` with ``"valid"`` padding (both floor the output length).
"""

import keras
import numpy as np

from coughclf.errors import CoughclfError

INPUT_MODES = ("features", "waveform")


def classifier_inputs(input_mode, *, feature_shape, clip_seconds, sample_rate=16000, frontend=None,
                      waveform_augmentation=None, spec_augmentation=None, name="audio"):
    """The model input and its feature tensor for either input mode.

    Args:
        input_mode: ``"features"`` (the input is ``feature_shape``) or ``"waveform"``
            (the input is ``round(clip_seconds * sample_rate)`` samples and features are
            computed in-graph).
        feature_shape: shape of one example's features without the batch, time-major:
            ``(frames, n_mels)`` for log-mel models, ``(samples,)`` for raw-waveform models.
        clip_seconds: clip length in waveform mode.
        sample_rate: waveform sample rate in Hz.
        frontend: keyword arguments for ``LogMelSpectrogram`` (everything but
            ``sample_rate``); ``None`` for raw-waveform models, whose features are the
            (augmented) waveform itself.
        waveform_augmentation: already-built layers applied to the waveform, in order.
        spec_augmentation: already-built layers applied to ``[batch, frames, n_mels]``.
        name: name of the input layer.

    Returns:
        ``(inputs, features)``: the ``keras.Input`` and a tensor of shape
        ``[batch, *feature_shape]``.
    """
    if input_mode not in INPUT_MODES:
        raise CoughclfError(f"unknown input_mode {input_mode!r}; choose 'features' (precomputed "
                            "features) or 'waveform' (raw audio, features computed in the model)")
    if input_mode == "features":
        if waveform_augmentation or spec_augmentation:
            raise CoughclfError("augmentation layers run inside the model only with "
                                "input_mode='waveform'; augment precomputed features in the pipeline "
                                "or switch the input mode")
        inputs = keras.Input(shape=tuple(feature_shape), name=name)
        return inputs, inputs

    num_samples = int(round(clip_seconds * sample_rate))
    inputs = keras.Input(shape=(num_samples,), name=name)
    x = inputs
    for layer in waveform_augmentation or ():
        x = layer(x)
    if frontend is None:
        if spec_augmentation:
            raise CoughclfError("this model reads the raw waveform and has no spectrogram: "
                                "drop spec_augmentation or use waveform_augmentation")
        return inputs, x
    from coughclf.layers.frontend import LogMelSpectrogram

    x = LogMelSpectrogram(sample_rate=sample_rate, **frontend, name="log_mel")(x)
    for layer in spec_augmentation or ():
        x = layer(x)
    return inputs, x


def frames_for(clip_seconds, sample_rate, hop_length):
    """Frames of a centred STFT (``center=True``): ``1 + samples // hop_length``."""
    return 1 + int(round(clip_seconds * sample_rate)) // hop_length


def to_image(features, name="to_image"):
    """``[batch, frames, n_mels]`` → ``[batch, n_mels, frames, 1]``.

    Frequency becomes the image height and time the width, as in the reports' tables
    (PyTorch ``[1, n_mels, frames]``, channels-last here).
    """
    x = keras.layers.Permute((2, 1), name=f"{name}_mels_first")(features)
    return keras.layers.Reshape((*x.shape[1:], 1), name=name)(x)


def padded_conv2d(x, filters, kernel_size, *, strides=1, padding=0, activation=None, name=None,
                  **conv_options):
    """PyTorch ``Conv2d(kernel_size, stride, padding)``: zero padding, then a valid convolution.

    ``conv_options`` go to ``keras.layers.Conv2D`` (e.g. ``use_bias=False``, ``kernel_initializer``).
    """
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad" if name else None)(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="valid",
                               activation=activation, name=name, **conv_options)(x)


def padded_conv1d(x, filters, kernel_size, *, strides=1, padding=0, activation=None, name=None):
    """PyTorch ``Conv1d(kernel_size, stride, padding)`` on ``[batch, steps, channels]``."""
    if padding:
        x = keras.layers.ZeroPadding1D(padding, name=f"{name}_pad" if name else None)(x)
    return keras.layers.Conv1D(filters, kernel_size, strides=strides, padding="valid",
                               activation=activation, name=name)(x)


def classifier_head(x, num_classes, name="classifier"):
    """Linear(num_classes) → Softmax: class probabilities, as the reports' heads.

    Float32 under any policy: a mixed-precision model still outputs float32 probabilities
    (and its loss sees no half-precision rounding of them).
    """
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


def trainable_params(model):
    """Trainable parameter count (the number the reports print; BatchNorm γ and β only)."""
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def lstm_bias_difference(hidden, directions=1):
    """``(param_difference, difference_reason)`` of a Keras LSTM against PyTorch's.

    PyTorch's LSTM has two bias vectors per gate set (``b_ih`` and ``b_hh``), Keras one:
    ``4 · hidden`` fewer parameters per direction.

    Example:
        >>> lstm_bias_difference(256, directions=2)[0]
        -2048
    """
    difference = -4 * hidden * directions
    kind = "BiLSTM" if directions == 2 else "LSTM"
    return difference, (f"Keras LSTM has one bias vector per gate set, PyTorch two: 4*h fewer per "
                        f"direction ({kind} h={hidden}: {difference:,})")
