"""Kaldi log-mel filterbank as a Keras layer: ``torchaudio.compliance.kaldi.fbank`` inside the model.

The Audio Spectrogram Transformer's published weights (Gong et al. 2021; AudioSet, ESC-50,
Speech Commands) were trained on Kaldi filterbanks, as their recipe computes them::

    fbank = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=16000, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    fbank = (fbank - (-4.2677393)) / (4.5689974 * 2)       # AudioSet mean and std

:class:`KaldiFbank` computes the same numbers with ``keras.ops``, so the weights get the
features they expect wherever the model runs (TensorFlow, JAX, TFLite). Kaldi's steps differ
from librosa's (:class:`coughclf.layers.frontend.LogMelSpectrogram`) in every stage: frames
are not centred (only frames that fit: ``1 + (samples - 400) // 160``), each frame loses its
mean (DC offset) and is pre-emphasised (``x[i] - 0.97 x[i-1]``, the first sample against
itself), the window is a *symmetric* Hann window of 400 samples zero-padded on the right to
512, the mel filters are triangles in Kaldi's mel scale (``1127 ln(1 + f / 700)``) from
20 Hz to Nyquist, and the log is natural with float32's epsilon as floor. With
``use_energy=False`` the ``htk_compat`` flag changes nothing.

Example::

    import numpy as np
    from coughclf.layers import KaldiFbank

    fbank = KaldiFbank(normalization="audioset")(np.zeros((1, 16000), "float32"))
    print(fbank.shape)   # (1, 98, 128): 1 + (16000 - 400) // 160 frames
"""

import keras
import numpy as np
from keras import ops

from coughclf.errors import CoughclfError
from coughclf.layers.frontend import (
    MEL_PROJECTIONS,
    MelProjection,
    ShortTimeSpectrum,
    add_constant,
    check_choice,
    frame_signal,
    real_dft_matrix,
)

KALDI_WINDOWS = ("hanning", "povey", "hamming", "rectangular")
NORMALIZATIONS = (None, "audioset")
# The AST recipe's AudioSet statistics of the log fbank, and its division by twice the std.
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
# Kaldi floors the mel energies at float32's machine epsilon before the log.
EPSILON = float(np.finfo(np.float32).eps)


def kaldi_mel_scale(frequency):
    """Kaldi's mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def kaldi_mel_banks(n_mels, n_fft, sample_rate, low_freq=20.0, high_freq=0.0):
    """Kaldi's triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (``torchaudio...kaldi.get_mel_banks``).

    Triangles are linear in mel, over the FFT bins below Nyquist; the Nyquist bin gets no
    weight (torchaudio pads it with a zero column). ``high_freq <= 0`` counts from Nyquist.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise CoughclfError(f"KaldiFbank: low_freq={low_freq} and high_freq={high_freq} must satisfy "
                            f"0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz)")
    mel_low, mel_high = kaldi_mel_scale(low_freq), kaldi_mel_scale(high_freq)
    delta = (mel_high - mel_low) / (n_mels + 1)
    left = mel_low + np.arange(n_mels)[:, None] * delta
    centre, right = left + delta, left + 2.0 * delta
    bin_mel = kaldi_mel_scale(sample_rate / n_fft * np.arange(n_fft // 2))[None, :]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    banks = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(banks, ((0, 0), (0, 1)))


def kaldi_window(window, length):
    """Kaldi's symmetric analysis windows (``torchaudio...kaldi._feature_window_function``)."""
    phase = 2.0 * np.pi * np.arange(length) / (length - 1)
    if window == "rectangular":
        return np.ones(length)
    if window == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    hann = 0.5 - 0.5 * np.cos(phase)
    return hann ** 0.85 if window == "povey" else hann


@keras.saving.register_keras_serializable(package="coughclf")
class KaldiFbank(MelProjection, ShortTimeSpectrum):
    """``torchaudio.compliance.kaldi.fbank`` with ``use_energy=False, dither=0.0`` (the AST recipe).

    Input ``[batch, samples]`` float32 in [-1, 1] (as ``torchaudio.load`` reads audio), output
    ``[batch, 1 + (samples - win_length) // hop_length, n_mels]``: the natural log of the mel
    energies (Kaldi's ``snip_edges=True``: only whole frames).

    Args:
        sample_rate: Hz (the AST weights: 16,000).
        n_mels: mel filters (``num_mel_bins``; AST: 128).
        win_length: frame length in samples (25 ms at 16 kHz).
        hop_length: frame shift in samples (10 ms at 16 kHz).
        n_fft: FFT size; default the next power of two of ``win_length`` (Kaldi's
            ``round_to_power_of_two``), the frame zero-padded on the right.
        window: ``"hanning"`` (the AST recipe), ``"povey"`` (Kaldi's default), ``"hamming"``,
            ``"rectangular"``.
        preemphasis: ``x[i] - preemphasis * x[i - 1]`` within each frame (Kaldi: 0.97).
        remove_dc_offset: subtract each frame's mean first (Kaldi: true).
        low_freq: the filterbank's lowest frequency in Hz.
        high_freq: its highest in Hz (``high_freq <= 0``: that far below Nyquist).
        normalization: ``None``, or ``"audioset"``: ``(x - (-4.2677393)) / (2 * 4.5689974)``,
            as the AST recipe normalises features for its AudioSet-trained weights.
        stft: ``"fft"`` (``keras.ops.rfft``; TFLite's builtin ``RFFT2D``) or ``"matmul"``
            (a real DFT matrix, for runtimes without an FFT op).
        mel_projection: ``"dense"`` or ``"banded"`` (same numbers; see ``LogMelSpectrogram``).
    """

    def __init__(self, sample_rate=16000, n_mels=128, win_length=400, hop_length=160, n_fft=None,
                 window="hanning", preemphasis=0.97, remove_dc_offset=True, low_freq=20.0, high_freq=0.0,
                 normalization=None, stft="fft", mel_projection="dense", **kwargs):
        win_length = int(win_length)
        n_fft = int(n_fft) if n_fft else 1 << (win_length - 1).bit_length()
        super().__init__(sample_rate, n_fft, hop_length, win_length, window="hann", center=False,
                         stft=stft, **kwargs)
        name = type(self).__name__
        check_choice(name, "window", window, KALDI_WINDOWS)
        check_choice(name, "normalization", normalization, NORMALIZATIONS)
        check_choice(name, "mel_projection", mel_projection, MEL_PROJECTIONS)
        self.window = window
        self.n_mels = int(n_mels)
        self.preemphasis = float(preemphasis)
        self.remove_dc_offset = bool(remove_dc_offset)
        self.low_freq = float(low_freq)
        self.high_freq = float(high_freq)
        self.normalization = normalization
        self.mel_projection = mel_projection
        self.filterbank = kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, self.low_freq,
                                          self.high_freq)

    def build(self, input_shape):
        window = kaldi_window(self.window, self.win_length)
        if self.stft == "fft":
            self.window_weight = add_constant(self, "window", window)
        else:
            # The frame's zero padding to n_fft multiplies nothing: keep the matrix's first win_length rows.
            padded = np.pad(window, (0, self.n_fft - self.win_length))
            self.dft_matrix = add_constant(self, "dft_matrix",
                                           real_dft_matrix(padded, self.n_fft)[: self.win_length])
        self.build_mel_projection(self.filterbank)

    def power_spectrum(self, signal):
        """Kaldi's framing, DC removal, pre-emphasis, window and ``|FFT|^2``: ``[batch, frames, bins]``."""
        frames = frame_signal(signal, self.win_length, self.hop_length)
        if self.remove_dc_offset:
            frames = frames - ops.mean(frames, axis=-1, keepdims=True)
        if self.preemphasis:
            previous = ops.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
            frames = frames - self.preemphasis * previous
        if self.stft == "fft":
            frames = ops.pad(frames * self.window_weight,
                             [[0, 0], [0, 0], [0, self.n_fft - self.win_length]])
            real, imag = ops.rfft(frames)
        else:
            spectrum = ops.matmul(frames, self.dft_matrix)
            real, imag = spectrum[..., : self.num_bins], spectrum[..., self.num_bins:]
        return real * real + imag * imag

    def call(self, inputs):
        fbank = ops.log(ops.maximum(self.mel_power(self.power_spectrum(inputs)), EPSILON))
        if self.normalization == "audioset":
            fbank = (fbank - AUDIOSET_MEAN) / (2.0 * AUDIOSET_STD)
        return fbank

    def output_frames(self, input_shape):
        samples = input_shape[1]
        return None if samples is None else 1 + (samples - self.win_length) // self.hop_length

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_frames(input_shape), self.n_mels)

    def get_config(self):
        config = super().get_config()
        for inherited in ("center", "pad_mode"):  # fixed by Kaldi's framing
            config.pop(inherited)
        config.update(window=self.window, n_mels=self.n_mels, preemphasis=self.preemphasis,
                      remove_dc_offset=self.remove_dc_offset, low_freq=self.low_freq,
                      high_freq=self.high_freq, normalization=self.normalization,
                      mel_projection=self.mel_projection)
        return config


def kaldi_samples(frames, win_length=400, hop_length=160):
    """Samples that give exactly ``frames`` Kaldi frames: ``win_length + (frames - 1) * hop_length``."""
    return win_length + (int(frames) - 1) * hop_length
