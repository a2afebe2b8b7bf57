"""YAMNet's front end as Keras layers: waveform → log-mel (``YamnetLogMel``) → patches (``SpectrogramPatches``).

The published YAMNet (tensorflow/models, research/audioset/yamnet, ``features.py``) reads
16 kHz audio, pads it to whole patches (``pad_waveform``), and computes
``log(|STFT| @ mel + 0.001)``: frames of 400 samples (25 ms) every 160 (10 ms), a periodic
Hann window, each windowed frame zero-padded at its end to a 512-point FFT, the magnitude
(not the power) projected onto 64 mel bands of ``tf.signal.linear_to_mel_weight_matrix``
(HTK mel scale, 125–7,500 Hz, triangles without area normalisation, the DC bin zeroed). The
log-mel is then cut into patches of 96 frames every 48 (0.96 s every 0.48 s), each the
input of the MobileNet.

Two things differ from librosa's front end (:class:`coughclf.layers.frontend.LogMelSpectrogram`)
and are why this is its own layer: frames start at sample ``160 i`` with no centring, and the
400-sample window is zero-padded at the *end* to 512. The STFT itself is shared: a 512-sample
frame whose Hann window is padded *centrally* (librosa's convention, which
:class:`~coughclf.layers.frontend.ShortTimeSpectrum` implements) holds the same 400 windowed
samples shifted by 56 inside the FFT buffer, a circular shift that leaves the magnitude
unchanged; so the signal is padded by 56 zeros on each side and the shared STFT runs with
``center=False``.
"""

import keras
import numpy as np
from keras import ops

from coughclf.layers.frontend import MelProjection, ShortTimeSpectrum, check_choice, frame_signal

# features_lib / params.py of the research release.
SAMPLE_RATE = 16000
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48


def hertz_to_mel(frequencies):
    """The HTK mel scale of ``tf.signal``: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(frequencies, dtype=np.float64) / 700.0)


def htk_mel_matrix(num_mel_bins, num_spectrogram_bins, sample_rate, lower_edge_hertz, upper_edge_hertz):
    """``tf.signal.linear_to_mel_weight_matrix`` in NumPy (float64): ``[num_spectrogram_bins, num_mel_bins]``.

    Band edges equally spaced in HTK mel between the two edges, triangles of height 1 on the
    bin centres' mel values, and the DC bin's row zero (TensorFlow leaves it out).
    """
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins)[1:])[:, None]
    edges = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    lower, center, upper = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    weights = np.maximum(0.0, np.minimum((bins_mel - lower) / (center - lower), (upper - bins_mel) / (upper - center)))
    return np.pad(weights, [[1, 0], [0, 0]])


def patch_count(samples, sample_rate=SAMPLE_RATE):
    """Patches YAMNet makes of ``samples`` (at least one: a short clip is padded to 0.975 s)."""
    window, hop = patch_samples(sample_rate)
    return 1 + max(0, -(-(samples - window) // hop))


def patch_samples(sample_rate=SAMPLE_RATE):
    """``(samples of one patch, samples between patches)``: 15,600 and 7,680 at 16 kHz."""
    frame_hop = round(sample_rate * HOP_SECONDS)
    window = round(sample_rate * WINDOW_SECONDS) + (PATCH_FRAMES - 1) * frame_hop
    return window, PATCH_HOP_FRAMES * frame_hop


@keras.saving.register_keras_serializable(package="coughclf")
class YamnetLogMel(MelProjection, ShortTimeSpectrum):
    """YAMNet's log-mel: ``[batch, samples]`` → ``[batch, frames, 64]``, exactly as ``features.py``.

    The waveform is first zero-padded as YAMNet's ``pad_waveform`` does: to at least one
    patch (0.975 s) and then to a whole number of patch hops, so that ``frames`` is
    ``96 + 48 (patches - 1)`` (:func:`patch_count`).

    Args:
        sample_rate: 16,000 (the released weights' rate).
        n_mels: the number of mel bands (64).
        fmin: the lowest band's lower edge (125 Hz).
        fmax: the highest band's upper edge (7,500 Hz).
        log_offset: added before the natural log (0.001).
        stft: how the STFT is computed (see :class:`coughclf.layers.frontend.LogMelSpectrogram`).
        mel_projection: how the mel projection is computed (as there); the same numbers either way.

    >>> import numpy as np
    >>> layer = YamnetLogMel()
    >>> tuple(layer(np.zeros((2, 16000), "float32")).shape)  # 1 s: two patches' frames
    (2, 144, 64)
    """

    def __init__(self, sample_rate=SAMPLE_RATE, n_mels=MEL_BANDS, fmin=MEL_MIN_HZ, fmax=MEL_MAX_HZ,
                 log_offset=LOG_OFFSET, stft="fft", mel_projection="dense", **kwargs):
        window = round(sample_rate * WINDOW_SECONDS)
        n_fft = 2 ** int(np.ceil(np.log2(window)))
        for key in ("n_fft", "hop_length", "win_length", "window", "center", "pad_mode"):
            kwargs.pop(key, None)  # fixed by YAMNet; get_config of the base class writes them
        super().__init__(sample_rate, n_fft, round(sample_rate * HOP_SECONDS), window, "hann", False, "constant",
                         stft, **kwargs)
        check_choice(type(self).__name__, "mel_projection", mel_projection, ("dense", "banded"))
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = float(fmax)
        self.log_offset = float(log_offset)
        self.mel_projection = mel_projection

    def build(self, input_shape):
        super().build(input_shape)
        self.build_mel_projection(htk_mel_matrix(self.n_mels, self.num_bins, self.sample_rate, self.fmin,
                                                 self.fmax).T)

    def padding(self, samples):
        """``(left, right)`` zeros around ``samples`` (a number, or a scalar tensor where the length is only
        known when the graph runs): YAMNet's patch padding, then the window's centring."""
        window, hop = patch_samples(self.sample_rate)
        centring = (self.n_fft - self.win_length) // 2
        if isinstance(samples, int):
            return centring, window + (patch_count(samples, self.sample_rate) - 1) * hop - samples + centring
        hops = ops.maximum(0, (samples - window + hop - 1) // hop)
        return centring, window + hops * hop - samples + centring

    def call(self, inputs):
        samples = inputs.shape[1]
        left, right = self.padding(samples if samples is not None else ops.shape(inputs)[1])
        signal = ops.pad(inputs, [[0, 0], [left, right]])
        magnitude = ops.sqrt(self.power_spectrum(signal))
        return ops.log(self.mel_power(magnitude) + self.log_offset)

    def output_frames(self, input_shape):
        if input_shape[1] is None:
            return None
        return PATCH_FRAMES + PATCH_HOP_FRAMES * (patch_count(input_shape[1], self.sample_rate) - 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_frames(input_shape), self.n_mels)

    def get_config(self):
        config = super().get_config()
        config.update(n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax, log_offset=self.log_offset,
                      mel_projection=self.mel_projection)
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class SpectrogramPatches(keras.layers.Layer):
    """``[batch, frames, bands]`` → ``[batch, patches, patch_frames, bands]``: overlapping patches in time.

    ``patches = 1 + (frames - patch_frames) // hop_frames`` (YAMNet: 96 frames every 48),
    cut as ``tf.signal.frame`` does (a trailing part shorter than a patch is dropped).

    >>> import numpy as np
    >>> tuple(SpectrogramPatches()(np.zeros((1, 192, 64), "float32")).shape)
    (1, 3, 96, 64)
    """

    def __init__(self, patch_frames=PATCH_FRAMES, hop_frames=PATCH_HOP_FRAMES, **kwargs):
        super().__init__(**kwargs)
        self.patch_frames = int(patch_frames)
        self.hop_frames = int(hop_frames)

    def call(self, inputs):
        bands = inputs.shape[-1]
        frames = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]  # unknown in training
        # Patches of the flattened [frames * bands] rows are frames of the rows: the waveform framing, reused.
        patches = frame_signal(ops.reshape(inputs, (-1, frames * bands)), self.patch_frames * bands,
                               self.hop_frames * bands)
        count = patches.shape[1] if patches.shape[1] is not None else ops.shape(patches)[1]
        return ops.reshape(patches, (-1, count, self.patch_frames, bands))

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        patches = None if frames is None else 1 + (frames - self.patch_frames) // self.hop_frames
        return (input_shape[0], patches, self.patch_frames, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "patch_frames": self.patch_frames, "hop_frames": self.hop_frames}


@keras.saving.register_keras_serializable(package="coughclf")
class PatchesToBatch(keras.layers.Layer):
    """``[batch, patches, ...]`` → ``[batch * patches, ..., 1]``: each patch an image of one channel for
    the 2-D network, the patches of a clip consecutive in the batch.

    A reshape, not ``TimeDistributed``: that unrolls the network once per patch in the graph.
    """

    def call(self, inputs):
        return ops.reshape(inputs, (-1, *inputs.shape[2:], 1))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None or input_shape[1] is None else input_shape[0] * input_shape[1]
        return (batch, *input_shape[2:], 1)


@keras.saving.register_keras_serializable(package="coughclf")
class BatchToPatches(keras.layers.Layer):
    """``[batch * patches, features]`` → ``[batch, patches, features]``, undoing :class:`PatchesToBatch`."""

    def __init__(self, patches, **kwargs):
        super().__init__(**kwargs)
        self.patches = int(patches)

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.patches, inputs.shape[-1]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.patches
        return (batch, self.patches, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "patches": self.patches}
