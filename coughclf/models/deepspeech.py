"""Lightweight DeepSpeech2 (report 5): character CTC speech recognition.

One 1-D convolution over time (the features are its channels), BatchNorm and ReLU,
five shared-input bidirectional Elman RNN layers
(:class:`coughclf.layers.rnn.SharedInputBiRNN`), one fully connected layer and a
(log-)softmax over the characters plus the CTC blank (:mod:`coughclf.text`).

Batches are zero-padded to their longest utterance and carry each one's length; the
model maps the lengths through the front end and the strided convolution
(:func:`output_lengths`), zeroes padded frames before the convolution and masks them
in BatchNorm's statistics and the recurrent layers, so padding changes no output at a
valid frame. The model is a :class:`coughclf.ctc.CTCModel`: inputs
``{"audio" or "features", "length"}``, outputs ``{"log_probs", "logit_length"}``.
:func:`inference_model` gives the fixed-length, mask-free model for export.
"""

import keras

from coughclf.ctc import CTCModel
from coughclf.errors import CoughclfError
from coughclf.layers.rnn import SharedInputBiRNN
from coughclf.layers.sequence import SequenceLengths, SequenceMask
from coughclf.models import register_model
from coughclf.models.common import INPUT_MODES
from coughclf.text import CHARACTERS

# 25 ms windows every 10 ms at 16 kHz, 80 log-mel bands: the usual speech front end.
SPEECH_FRONTEND = {"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 80}
# The dB of a log-mel spectrogram referenced to its maximum span [-top_db, 0]; this maps
# [-80, 0] to [-1, 1] so the convolution starts from inputs of unit scale.
_DB_SCALE, _DB_OFFSET = 1.0 / 40.0, 1.0
_DEFAULTS = {"num_features": 80, "vocab_size": len(CHARACTERS), "conv_filters": 256, "conv_kernel": 11,
             "conv_stride": 2, "rnn_units": 256, "rnn_layers": 5}


def deepspeech2_lite_params(num_features=80, vocab_size=len(CHARACTERS), conv_filters=256, conv_kernel=11,
                            rnn_units=256, rnn_layers=5, **_):
    """Trainable parameters of :func:`deepspeech2_lite`, from report 5's formula.

    ``F·k·C + C`` (convolution) ``+ 2·C`` (BatchNorm γ, β) ``+ (C·h + h + 2·h²)`` (first
    RNN layer, d = C) ``+ (L − 1)·(h·h + h + 2·h²)`` (the others, d = h)
    ``+ h·(V + 1) + (V + 1)`` (the output layer over V characters and the blank).
    """
    conv = num_features * conv_kernel * conv_filters + conv_filters + 2 * conv_filters
    rnn = sum(inputs * rnn_units + rnn_units + 2 * rnn_units ** 2
              for inputs in [conv_filters] + [rnn_units] * (rnn_layers - 1))
    return conv + rnn + (rnn_units + 1) * (vocab_size + 1)


def output_lengths(input_lengths, *, conv_kernel=11, conv_stride=2):
    """Logit frames for ``input_lengths`` feature frames: the convolution's ``⌊(T − 1) / stride⌋ + 1``.

    The convolution pads ``conv_kernel // 2`` zeros on both sides, so an odd kernel
    gives ``ceil(T / stride)`` frames. Works on ints, NumPy arrays and tensors.
    """
    padding = conv_kernel // 2
    return (input_lengths + 2 * padding - conv_kernel) // conv_stride + 1


@register_model(
    "deepspeech2_lite",
    task="ctc",
    report="Report 5: lightweight DeepSpeech2 (character CTC); the report gives the layer list and the "
           "RNN formula d*h + h + 2*h^2, no table of counts",
    report_params=deepspeech2_lite_params(**_DEFAULTS),
    defaults={**_DEFAULTS, "frontend": SPEECH_FRONTEND, "sample_rate": 16000},
)
def deepspeech2_lite(num_features=80, vocab_size=len(CHARACTERS), conv_filters=256, conv_kernel=11,
                     conv_stride=2, rnn_units=256, rnn_layers=5, activation="relu", input_mode="features",
                     sample_rate=16000, frontend=None, waveform_augmentation=None, spec_augmentation=None):
    """Lightweight DeepSpeech2 of report 5 as a :class:`coughclf.ctc.CTCModel`.

    Report 5 (spec section 5): one Conv1D over time (features as channels, stride 2),
    five bidirectional vanilla RNN layers whose directions share one input matrix and
    bias and are summed (``d·h + h + 2·h²`` parameters each), one fully connected layer,
    softmax over the characters plus the CTC blank. Here the output is the
    log-softmax (the same distribution, stable for CTC), and the convolution is
    followed by BatchNorm and the RNN's activation. Parameters:
    :func:`deepspeech2_lite_params` — 1,217,821 with the defaults (80 features,
    256 filters of width 11, 256 units, 28 characters); the report prints the formula,
    not a number, so there is no difference to explain.

    Args:
        num_features: feature channels per frame in ``"features"`` mode (in
            ``"waveform"`` mode the front end's ``n_mels``).
        vocab_size: characters without the blank; the output has ``vocab_size + 1``
            classes, the blank at index 0 (:mod:`coughclf.text`).
        conv_filters: the convolution's filters.
        conv_kernel: its kernel width in frames (odd kernels keep frames centred; zero padding
            of ``conv_kernel // 2`` on both sides).
        conv_stride: its stride in frames.
        rnn_units: width of each recurrent layer.
        rnn_layers: recurrent layers.
        activation: their nonlinearity ("relu" or "tanh").
        input_mode: ``"features"``: inputs ``{"features": [B, T, num_features],
            "length": [B] frames}``; ``"waveform"``: inputs ``{"audio": [B, samples],
            "length": [B] samples}`` and the log-mel front end inside the model.
        sample_rate: waveform mode: the audio's sample rate in Hz.
        frontend: waveform mode: ``LogMelSpectrogram`` options (default
            :data:`SPEECH_FRONTEND`: 25 ms / 10 ms, 80 mels); its dB are scaled from
            [-80, 0] to [-1, 1].
        waveform_augmentation: an already-built layer on the waveform (waveform mode),
            identity at inference; it must keep the signal's length.
        spec_augmentation: an already-built layer on the log-mel (waveform mode), likewise.

    Returns:
        a ``CTCModel`` with outputs ``{"log_probs": [B, T', vocab_size + 1],
        "logit_length": [B]}``, ``T' = output_lengths(frames)``.

    Example::

        from coughclf import models
        model = models.build("deepspeech2_lite", input_mode="waveform", conv_filters=128, rnn_units=128)
        model.compile("adam")
        model.fit(batches)   # ({"audio", "length"}, blank-padded labels)
    """
    if input_mode not in INPUT_MODES:
        raise CoughclfError(f"unknown input_mode {input_mode!r}; choose 'features' (precomputed "
                            "log-mel frames) or 'waveform' (raw audio, log-mel in the model)")
    lengths = keras.Input((), dtype="int32", name="length")
    if input_mode == "features":
        if waveform_augmentation or spec_augmentation:
            raise CoughclfError("augmentation layers run inside deepspeech2_lite only with "
                                "input_mode='waveform'")
        source = keras.Input((None, num_features), name="features")
        features, frame_lengths = source, lengths
    else:
        source = keras.Input((None,), name="audio")
        features, frame_lengths = _log_mel(source, lengths, sample_rate, {**SPEECH_FRONTEND, **(frontend or {})},
                                           waveform_augmentation, spec_augmentation)
    x = SequenceMask(attach_mask=False, name="frame_mask")([features, frame_lengths])
    logit_lengths = SequenceLengths(conv_kernel, conv_stride, conv_kernel // 2, name="logit_length")(frame_lengths)
    x = _recognise(x, logit_lengths, _layers(vocab_size, conv_filters, conv_kernel, conv_stride, rnn_units,
                                              rnn_layers, activation))
    return CTCModel({input_mode_input_name(input_mode): source, "length": lengths},
                    {"log_probs": x, "logit_length": logit_lengths}, name="deepspeech2_lite")


def input_mode_input_name(input_mode):
    """The name of the model's signal input: ``"features"`` or ``"audio"``."""
    return "features" if input_mode == "features" else "audio"


def _log_mel(audio, lengths, sample_rate, frontend, waveform_augmentation, spec_augmentation):
    from coughclf.layers.frontend import LogMelSpectrogram

    x = audio
    for layer in waveform_augmentation or ():
        x = layer(x)
    log_mel = LogMelSpectrogram(sample_rate=sample_rate, **frontend, name="log_mel")
    x = keras.layers.Rescaling(_DB_SCALE, offset=_DB_OFFSET, name="log_mel_scale")(log_mel(x))
    for layer in spec_augmentation or ():
        x = layer(x)
    padding = log_mel.n_fft // 2 if log_mel.center else 0
    frame_lengths = SequenceLengths(log_mel.n_fft, log_mel.hop_length, padding, name="frame_length")(lengths)
    return x, frame_lengths


def _layers(vocab_size, conv_filters, conv_kernel, conv_stride, rnn_units, rnn_layers, activation):
    """The recogniser's layers after the front end, in order, with the names inference_model looks up."""
    return [
        keras.layers.ZeroPadding1D(conv_kernel // 2, name="conv_pad"),
        keras.layers.Conv1D(conv_filters, conv_kernel, strides=conv_stride, name="conv"),
        SequenceMask(name="conv_mask"),
        keras.layers.BatchNormalization(name="conv_bn"),
        keras.layers.Activation(activation, name="conv_activation"),
        *[SharedInputBiRNN(rnn_units, activation=activation, name=f"birnn_{index}")
          for index in range(1, rnn_layers + 1)],
        # Float32 under any policy: the CTC loss sums log-probabilities over every frame.
        keras.layers.Dense(vocab_size + 1, activation="log_softmax", dtype="float32", name="log_probs"),
    ]


def _recognise(features, logit_lengths, layers):
    """Apply ``layers`` to zeroed features; with ``logit_lengths`` None (fixed length) no masks."""
    x = features
    for layer in layers:
        if isinstance(layer, SequenceMask):
            if logit_lengths is not None:
                x = layer([x, logit_lengths])
            continue
        x = layer(x)
    return x


def inference_model(model, input_length):
    """A mask-free model for one fixed input length, sharing ``model``'s layers and weights.

    Input ``[batch, input_length]`` samples (waveform mode) or ``[batch, input_length,
    num_features]`` frames (features mode); output ``[batch, frames, classes]``
    per-frame log-probabilities — every frame is valid, so no lengths are needed.
    This is the model to export; :func:`coughclf.ctc.greedy_decode_numpy` decodes its output.
    """
    rnn_layers = sorted((layer for layer in model.layers if layer.name.startswith("birnn_")),
                        key=lambda layer: int(layer.name.removeprefix("birnn_")))
    layers = [model.get_layer(name) for name in ("conv_pad", "conv", "conv_bn", "conv_activation")]
    layers += [*rnn_layers, model.get_layer("log_probs")]
    if any(layer.name == "log_mel" for layer in model.layers):
        source = keras.Input((int(input_length),), name="audio")
        features = model.get_layer("log_mel_scale")(model.get_layer("log_mel")(source))
    else:
        source = keras.Input((int(input_length), model.get_layer("conv").input.shape[-1]), name="features")
        features = source
    return keras.Model(source, _recognise(features, None, layers), name=f"{model.name}_inference")
