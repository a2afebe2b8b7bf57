"""Audio front end as Keras layers: librosa-exact log-mel, MFCC and frame features.

The layers take raw waveforms ``[batch, samples]`` (float32) and run inside the
model, so feature extraction happens wherever the model runs (CPU, GPU, TFLite)
instead of clip by clip in Python. Every layer reproduces the matching librosa
function (same padding, window, filterbank and dB conversion), so a model
trained on librosa features can be fed by these layers and vice versa.

Constants (window, DFT matrix, mel filterbank, DCT matrix) are computed with
librosa/numpy in ``build`` and stored as non-trainable weights: the config stays
small, and the numbers come from librosa itself rather than a re-derivation.
Frames are cut with slices rather than an index table, so an exported model
carries few constants besides its trained weights.
"""

import math

import keras
import numpy as np
from keras import ops

from coughclf.errors import CoughclfError

STFT_MODES = ("fft", "matmul")
MEL_SCALES = ("slaney", "htk")
MEL_NORMS = ("slaney", None)
CENTER_PAD_MODES = ("constant", "reflect")
NORMALIZATIONS = (None, "per_example")
MEL_PROJECTIONS = ("dense", "banded")
# Runs of similar-width mel filters in the banded projection: 4 cut kws_cnn's 128 x 24 padded cells to 1,280.
MEL_BAND_RUNS = 4


def check_choice(layer_name, option, value, choices):
    """Raise a one-line :class:`CoughclfError` when ``value`` is not among ``choices``."""
    if value not in choices:
        raise CoughclfError(
            f"{layer_name}: {option}={value!r} is not supported; use one of {list(choices)} "
            "in the layer options (or the training config that sets them)"
        )


def pad_signal(signal, left, right, mode):
    """Pad ``[batch, samples]`` on the time axis with numpy-style ``mode``.

    ``"edge"`` is built from concatenation because TensorFlow's pad has no edge
    mode; ``"constant"`` pads zeros and ``"reflect"`` mirrors without the edge
    sample, as numpy and librosa do.
    """
    if mode == "edge":
        first = ops.repeat(signal[:, :1], left, axis=1)
        last = ops.repeat(signal[:, -1:], right, axis=1)
        return ops.concatenate([first, signal, last], axis=1)
    return ops.pad(signal, [[0, 0], [left, right]], mode=mode)


def frame_signal(signal, frame_length, hop_length):
    """Cut ``[batch, samples]`` into overlapping frames ``[batch, frames, frame_length]``.

    The signal is reshaped into rows of one hop; frame ``i`` is rows ``i`` to
    ``i + pieces - 1`` side by side, cut to ``frame_length``. Slices and one
    concatenation, the same on every backend, and no index table: a gather
    would put a ``[frames, frame_length]`` int32 constant into an exported
    model, larger than a quantised network. Trailing samples that do not fill
    a frame are dropped, as in ``librosa.util.frame``.
    """
    samples = ops.shape(signal)[1]
    frames = 1 + (samples - frame_length) // hop_length
    pieces = -(-frame_length // hop_length)
    rows = frames + pieces - 1
    # The rows may need up to one hop beyond the signal; those samples fall outside every frame.
    padded = ops.pad(signal, [[0, 0], [0, hop_length]])[:, : rows * hop_length]
    blocks = ops.reshape(padded, (-1, rows, hop_length))
    spans = [blocks[:, piece : piece + frames] for piece in range(pieces)]
    return ops.concatenate(spans, axis=-1)[..., :frame_length]


def count_frames(samples, frame_length, hop_length, center):
    """Number of frames librosa produces for ``samples`` (None stays None)."""
    if samples is None:
        return None
    padded = samples + 2 * (frame_length // 2) if center else samples
    return 1 + (padded - frame_length) // hop_length


def add_constant(layer, name, array):
    """Store a numpy constant on ``layer`` as a non-trainable float32 weight."""
    array = np.asarray(array, dtype=np.float32)
    return layer.add_weight(
        name=name,
        shape=array.shape,
        dtype="float32",
        trainable=False,
        initializer=lambda shape, dtype=None: ops.convert_to_tensor(array, dtype="float32"),
    )


def stft_window(window, win_length, n_fft):
    """librosa's analysis window: periodic, zero-padded centrally to ``n_fft``."""
    import librosa

    return librosa.util.pad_center(
        librosa.filters.get_window(window, win_length, fftbins=True), size=n_fft
    )


def real_dft_matrix(window, n_fft):
    """``[n_fft, 2 * bins]`` matrix: windowed frame @ matrix = [real | imaginary] of the rFFT.

    Angles use ``(k * n) mod n_fft`` in int64 and float64 so the float32
    matrix carries no phase error beyond its own rounding.
    """
    bins = n_fft // 2 + 1
    phase = (np.arange(n_fft)[:, None] * np.arange(bins)[None, :]) % n_fft
    angle = 2.0 * np.pi * phase / n_fft
    window = np.asarray(window, dtype=np.float64)[:, None]
    return np.concatenate([window * np.cos(angle), -window * np.sin(angle)], axis=1)


def cheapest_runs(widths, count):
    """Split filters ``0..n-1`` into at most ``count`` runs of consecutive filters, padding
    each filter to its run's widest, with the fewest padded cells; returns ``[(start, stop)]``."""
    n = len(widths)
    # cost[runs][end]: fewest cells covering filters [0, end) with that many runs; cut: where the last run starts.
    cost = np.full((count + 1, n + 1), np.inf)
    cut = np.zeros((count + 1, n + 1), dtype=int)
    cost[0, 0] = 0
    for runs in range(1, count + 1):
        for stop in range(1, n + 1):
            widest = np.maximum.accumulate(widths[stop - 1 :: -1])[::-1]
            candidates = cost[runs - 1, :stop] + (stop - np.arange(stop)) * widest
            cut[runs, stop] = int(np.argmin(candidates))
            cost[runs, stop] = candidates[cut[runs, stop]]
    runs, stop, bounds = int(np.argmin(cost[:, n])), n, []
    while stop:
        bounds.append((int(cut[runs, stop]), stop))
        runs, stop = runs - 1, int(cut[runs, stop])
    return bounds[::-1]


def banded_filterbank(filterbank, runs=MEL_BAND_RUNS):
    """The mel filterbank ``[n_mels, bins]`` as bands: ``(indices, weights, shape)``.

    Every mel filter is non-zero on one contiguous stretch of FFT bins, and the
    stretches widen with frequency. Filters are grouped into at most ``runs``
    runs of consecutive filters (:func:`cheapest_runs`); in a run of ``count``
    filters, each takes ``width`` bins (the run's widest stretch) starting where
    its own does (earlier if that would pass the last bin; extra bins weigh 0).
    ``indices`` and ``weights`` are flat, run after run, filter after filter;
    ``shape`` lists each run's ``(count, width)``. Summing ``power[indices] *
    weights`` over each filter's ``width`` entries equals ``filterbank @ power``.
    """
    filterbank = np.asarray(filterbank)
    bins = filterbank.shape[1]
    nonzero = [np.flatnonzero(row) for row in filterbank]
    first = np.array([band[0] if band.size else 0 for band in nonzero])
    widths = np.array([band[-1] - band[0] + 1 if band.size else 1 for band in nonzero])
    indices, filters, shape = [], [], []
    for start, stop in cheapest_runs(widths, runs):
        width = int(widths[start:stop].max())
        starts = np.minimum(first[start:stop], bins - width)
        indices.append((starts[:, None] + np.arange(width)[None, :]).ravel())
        filters.append(np.repeat(np.arange(start, stop), width))
        shape.append((stop - start, width))
    indices, filters = np.concatenate(indices), np.concatenate(filters)
    # int16 halves the index table in an exported model; every backend and TFLite gathers with it.
    index_type = np.int16 if bins <= np.iinfo(np.int16).max else np.int32
    return indices.astype(index_type), filterbank[filters, indices], shape


def mel_filter_problem(sample_rate, n_fft, n_mels, fmin, fmax, htk):
    """Why ``librosa.filters.mel`` with these settings gives a filterbank that is wrong, or None.

    ``0 <= fmin < fmax <= sample_rate / 2`` must hold (``fmax`` None: ``sample_rate / 2``), and no
    filter may be empty. librosa's own test (its "Empty filters detected" warning), computed
    without building the ``[n_mels, bins]`` matrix (400 MB for 100,000 mels): filter ``i`` weighs
    the FFT bins strictly between mel frequencies ``i`` and ``i + 2`` and is empty when there are
    none, unless its lower edge is 0 Hz (librosa exempts it).
    """
    import librosa

    nyquist = sample_rate / 2
    fmax = nyquist if fmax is None else fmax
    if not 0 <= fmin < fmax <= nyquist:
        return (
            f"fmin={fmin:g} and fmax={fmax:g} must satisfy 0 <= fmin < fmax <= sample_rate / 2 = "
            f"{nyquist:g} Hz (the mel filters cover fmin to fmax; the spectrum ends at sample_rate / 2)"
        )

    def empty_filters(count):
        edges = librosa.mel_frequencies(count + 2, fmin=fmin, fmax=fmax, htk=htk)
        bins = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
        above_lower = np.searchsorted(bins, edges[:-2], side="right")
        inside = np.searchsorted(bins, edges[2:], side="left") - above_lower
        return np.flatnonzero((inside <= 0) & (edges[:-2] != 0))

    # Filters i and i + 2 share no bin: more than twice the bins (and the exempt first) leave one empty.
    most = 2 * (n_fft // 2 + 1) + 1
    if n_mels <= most and not empty_filters(n_mels).size:
        return None
    if empty_filters(1).size:
        return (
            f"fmin={fmin:g} to fmax={fmax:g} Hz holds no FFT bin at n_fft={n_fft} and {sample_rate} Hz, "
            "so every mel filter would be empty; widen the range or use a larger n_fft"
        )
    low, high = 1, min(n_mels, most + 1)  # the most mels with no empty filter: low has none, high has
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if not empty_filters(middle).size else (low, middle)
    return (
        f"n_mels={n_mels} is more mel filters than n_fft={n_fft} at {sample_rate} Hz can fill between "
        f"fmin={fmin:g} and fmax={fmax:g} Hz: some would hold no FFT bin (librosa: \"Empty filters "
        f"detected\") and give a silent band; use n_mels <= {low}, a larger n_fft or a wider fmin-fmax"
    )


def float32_by_default(kwargs):
    """Layer kwargs computing in float32 unless told otherwise: a mixed-precision policy
    would otherwise feed float16 into what needs float32 (FFTs, dB conversions, recurrences)."""
    kwargs.setdefault("dtype", "float32")
    return kwargs


class FrameFeature(keras.layers.Layer):
    """Base of the per-frame waveform statistics (ZCR, RMS): framing like librosa."""

    def __init__(self, frame_length=2048, hop_length=512, center=True, **kwargs):
        super().__init__(**float32_by_default(kwargs))
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        self.center = bool(center)

    def frames(self, signal, pad_mode):
        if self.center:
            half = self.frame_length // 2
            signal = pad_signal(signal, half, half, pad_mode)
        return frame_signal(signal, self.frame_length, self.hop_length)

    def compute_output_shape(self, input_shape):
        frames = count_frames(input_shape[1], self.frame_length, self.hop_length, self.center)
        return (input_shape[0], frames)

    def get_config(self):
        config = super().get_config()
        config.update(
            frame_length=self.frame_length, hop_length=self.hop_length, center=self.center
        )
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class ZeroCrossingRate(FrameFeature):
    """``librosa.feature.zero_crossing_rate``: fraction of sign changes per frame.

    Input ``[batch, samples]``, output ``[batch, frames]``. Centre padding
    repeats the edge samples and samples within ±1e-10 of zero count as
    positive, both as in librosa's defaults.
    """

    threshold = 1e-10

    def call(self, inputs):
        negative = ops.cast(self.frames(inputs, "edge") < -self.threshold, "int32")
        changes = ops.not_equal(negative[:, :, 1:], negative[:, :, :-1])
        return ops.sum(ops.cast(changes, "float32"), axis=-1) / self.frame_length


@keras.saving.register_keras_serializable(package="coughclf")
class RMSEnergy(FrameFeature):
    """``librosa.feature.rms`` on a waveform: root mean square per frame.

    Input ``[batch, samples]``, output ``[batch, frames]``.
    """

    def __init__(self, frame_length=2048, hop_length=512, center=True, pad_mode="constant", **kwargs):
        super().__init__(frame_length, hop_length, center, **kwargs)
        check_choice(type(self).__name__, "pad_mode", pad_mode, CENTER_PAD_MODES)
        self.pad_mode = pad_mode

    def call(self, inputs):
        frames = self.frames(inputs, self.pad_mode)
        return ops.sqrt(ops.mean(frames * frames, axis=-1))

    def get_config(self):
        config = super().get_config()
        config.update(pad_mode=self.pad_mode)
        return config


class ShortTimeSpectrum(keras.layers.Layer):
    """Base of the STFT layers: librosa's centred, windowed short-time spectrum.

    Both modes cut frames with :func:`frame_signal`. ``stft="fft"`` windows
    them and takes ``keras.ops.rfft`` (the fastest path on CPU and GPU; TFLite's
    builtin ``RFFT2D``); ``stft="matmul"`` multiplies by a real DFT matrix, for
    runtimes without an FFT op and for any ``n_fft``. Both give the same numbers
    within float32 round-off.
    """

    def __init__(
        self,
        sample_rate=16000,
        n_fft=1024,
        hop_length=512,
        win_length=None,
        window="hann",
        center=True,
        pad_mode="constant",
        stft="fft",
        **kwargs,
    ):
        super().__init__(**float32_by_default(kwargs))
        name = type(self).__name__
        check_choice(name, "stft", stft, STFT_MODES)
        check_choice(name, "pad_mode", pad_mode, CENTER_PAD_MODES)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = None if win_length is None else int(win_length)
        if (self.win_length or self.n_fft) > self.n_fft:
            raise CoughclfError(
                f"{name}: win_length={win_length} exceeds n_fft={n_fft}; set win_length <= n_fft"
            )
        self.window = window
        self.center = bool(center)
        self.pad_mode = pad_mode
        self.stft = stft

    @property
    def num_bins(self):
        return self.n_fft // 2 + 1

    def build(self, input_shape):
        window = stft_window(self.window, self.win_length or self.n_fft, self.n_fft)
        if self.stft == "fft":
            self.window_weight = add_constant(self, "window", window)
        else:
            self.dft_matrix = add_constant(self, "dft_matrix", real_dft_matrix(window, self.n_fft))

    def power_spectrum(self, signal):
        """``|STFT|^2`` as ``[batch, frames, n_fft // 2 + 1]``."""
        if self.center:
            half = self.n_fft // 2
            signal = pad_signal(signal, half, half, self.pad_mode)
        frames = frame_signal(signal, self.n_fft, self.hop_length)
        if self.stft == "fft":
            real, imag = ops.rfft(frames * self.window_weight)
        else:
            spectrum = ops.matmul(frames, self.dft_matrix)
            real, imag = spectrum[..., : self.num_bins], spectrum[..., self.num_bins :]
        return real * real + imag * imag

    def output_frames(self, input_shape):
        return count_frames(input_shape[1], self.n_fft, self.hop_length, self.center)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            stft=self.stft,
        )
        return config


class MelProjection:
    """Mixin of the mel front ends: ``[batch, frames, bins]`` power → ``[batch, frames, n_mels]``.

    The layer sets ``mel_projection`` (``"dense"`` or ``"banded"``, see
    :class:`LogMelSpectrogram`), ``n_mels`` and ``num_bins``, and calls
    :meth:`build_mel_projection` with its ``[n_mels, bins]`` filterbank in ``build``.
    """

    def build_mel_projection(self, filterbank):
        if self.mel_projection == "dense":
            self.mel_filterbank = add_constant(self, "mel_filterbank", np.asarray(filterbank).T)
        else:
            # Indices and run shapes follow from the filterbank's shape, not training: plain constants.
            self.mel_band_indices, weights, self.mel_band_shape = banded_filterbank(filterbank)
            self.mel_band_weights = add_constant(self, "mel_band_weights", weights[:, None])

    def mel_power(self, spectrum):
        """``[batch, frames, bins]`` power (or magnitude) spectrum → ``[batch, frames, n_mels]``."""
        if self.mel_projection == "dense":
            return ops.matmul(spectrum, self.mel_filterbank)
        # Bins first, batch and frames flattened: the gather copies whole rows, not single floats.
        batch_frames = ops.shape(spectrum)[:2]
        rows = ops.reshape(ops.transpose(spectrum, (2, 0, 1)), (self.num_bins, -1))
        weighted = ops.take(rows, self.mel_band_indices, axis=0) * self.mel_band_weights
        mels, offset = [], 0
        for count, width in self.mel_band_shape:
            run = weighted[offset : offset + count * width]
            mels.append(ops.sum(ops.reshape(run, (count, width, -1)), axis=1))
            offset += count * width
        mel = ops.transpose(ops.concatenate(mels, axis=0))
        return ops.reshape(mel, (*batch_frames, self.n_mels))


@keras.saving.register_keras_serializable(package="coughclf")
class LogMelSpectrogram(MelProjection, ShortTimeSpectrum):
    """Log-mel spectrogram equal to ``librosa.power_to_db(librosa.feature.melspectrogram(...))``.

    Input ``[batch, samples]`` float32, output ``[batch, frames, n_mels]`` in dB
    (time-major). ``ref="max"`` references each example to its own maximum
    (librosa's ``ref=np.max``), a float is a fixed reference; ``top_db`` clips
    each example to that many dB below its maximum (None: no clipping).
    ``normalize="per_example"`` then scales each example to zero mean and unit
    variance. ``mel_scale``/``norm`` select librosa's ``htk`` flag and filter
    normalisation ("slaney" or None).

    ``mel_projection`` picks how the power spectrum becomes mel bands, with the
    same numbers either way: ``"dense"`` multiplies by the ``[bins, n_mels]``
    filterbank, the faster choice for batches in TensorFlow and JAX (the
    default); ``"banded"`` gathers each filter's contiguous stretch of bins and
    weights it (:func:`banded_filterbank`): for n_fft 1024 and 128 mels, 1,280
    weights instead of 65,664. The TFLite export uses it, because the front end
    stays float in int8 models, where a dense filterbank (263 KB) would outweigh
    the quantised network; at batch 1 in TFLite it is as fast as the matmul.
    """

    def __init__(
        self,
        sample_rate=16000,
        n_fft=1024,
        hop_length=512,
        win_length=None,
        window="hann",
        n_mels=128,
        fmin=0.0,
        fmax=None,
        mel_scale="slaney",
        norm="slaney",
        center=True,
        pad_mode="constant",
        power=2.0,
        amin=1e-10,
        top_db=80.0,
        ref="max",
        normalize=None,
        stft="fft",
        mel_projection="dense",
        **kwargs,
    ):
        super().__init__(
            sample_rate, n_fft, hop_length, win_length, window, center, pad_mode, stft, **kwargs
        )
        name = type(self).__name__
        check_choice(name, "mel_scale", mel_scale, MEL_SCALES)
        check_choice(name, "norm", norm, MEL_NORMS)
        check_choice(name, "normalize", normalize, NORMALIZATIONS)
        check_choice(name, "mel_projection", mel_projection, MEL_PROJECTIONS)
        if ref != "max" and not isinstance(ref, (int, float)):
            raise CoughclfError(f'{name}: ref={ref!r} must be "max" or a number')
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self.mel_scale = mel_scale
        self.norm = norm
        self.power = float(power)
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)
        self.ref = ref if ref == "max" else float(ref)
        self.normalize = normalize
        self.mel_projection = mel_projection
        problem = mel_filter_problem(
            self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, mel_scale == "htk"
        )
        if problem:
            raise CoughclfError(f"{name}: {problem}")

    def build(self, input_shape):
        import librosa

        super().build(input_shape)
        filterbank = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.mel_scale == "htk",
            norm=self.norm,
            dtype=np.float64,
        )
        self.build_mel_projection(filterbank)

    def power_to_db(self, power):
        """``librosa.power_to_db`` per example on ``[batch, frames, bins]``."""
        db = 10.0 * ops.log10(ops.maximum(power, self.amin))
        if self.ref == "max":
            db = db - 10.0 * ops.log10(ops.maximum(ops.max(power, axis=(1, 2), keepdims=True), self.amin))
        else:
            db = db - 10.0 * math.log10(max(self.amin, self.ref))
        if self.top_db is not None:
            db = ops.maximum(db, ops.max(db, axis=(1, 2), keepdims=True) - self.top_db)
        return db

    def call(self, inputs):
        spectrum = self.power_spectrum(inputs)
        if self.power == 1.0:
            spectrum = ops.sqrt(spectrum)
        elif self.power != 2.0:
            spectrum = ops.power(spectrum, self.power / 2.0)
        features = self.power_to_db(self.mel_power(spectrum))
        if self.normalize == "per_example":
            mean = ops.mean(features, axis=(1, 2), keepdims=True)
            std = ops.std(features, axis=(1, 2), keepdims=True)
            features = (features - mean) / ops.maximum(std, 1e-6)
        return features

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_frames(input_shape), self.n_mels)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            mel_scale=self.mel_scale,
            norm=self.norm,
            power=self.power,
            amin=self.amin,
            top_db=self.top_db,
            ref=self.ref,
            normalize=self.normalize,
            mel_projection=self.mel_projection,
        )
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class MFCC(LogMelSpectrogram):
    """``librosa.feature.mfcc``: DCT-II (orthonormal) of the log-mel in dB.

    Output ``[batch, frames, n_mfcc]``. Defaults follow librosa's mfcc, whose
    ``power_to_db`` uses ``ref=1.0`` and ``top_db=80``; every log-mel option
    is accepted. ``lifter > 0`` applies librosa's sinusoidal liftering.
    """

    def __init__(self, n_mfcc=20, lifter=0.0, ref=1.0, **kwargs):
        super().__init__(ref=ref, **kwargs)
        if int(n_mfcc) > self.n_mels:
            raise CoughclfError(f"MFCC: n_mfcc={n_mfcc} exceeds n_mels={self.n_mels}; lower n_mfcc")
        self.n_mfcc = int(n_mfcc)
        self.lifter = float(lifter)

    def build(self, input_shape):
        import scipy.fft

        super().build(input_shape)
        dct = scipy.fft.dct(np.eye(self.n_mels), type=2, norm="ortho", axis=0)[: self.n_mfcc]
        if self.lifter > 0:
            lift = 1 + (self.lifter / 2) * np.sin(np.pi * np.arange(1, 1 + self.n_mfcc) / self.lifter)
            dct = dct * lift[:, None]
        self.dct_matrix = add_constant(self, "dct_matrix", dct.T)

    def call(self, inputs):
        return ops.matmul(super().call(inputs), self.dct_matrix)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_frames(input_shape), self.n_mfcc)

    def get_config(self):
        config = super().get_config()
        config.update(n_mfcc=self.n_mfcc, lifter=self.lifter)
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class SpectralCentroid(ShortTimeSpectrum):
    """``librosa.feature.spectral_centroid``: magnitude-weighted mean frequency (Hz) per frame.

    Input ``[batch, samples]``, output ``[batch, frames]``. Silent frames give 0,
    as in librosa (whose L1 normalisation leaves near-zero frames unscaled).
    """

    def __init__(self, sample_rate=16000, n_fft=2048, hop_length=512, **kwargs):
        super().__init__(sample_rate, n_fft, hop_length, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        frequencies = np.linspace(0, self.sample_rate / 2, self.num_bins)
        self.bin_frequencies = add_constant(self, "bin_frequencies", frequencies)

    def call(self, inputs):
        magnitude = ops.sqrt(self.power_spectrum(inputs))
        total = ops.sum(magnitude, axis=-1)
        total = ops.where(total < np.finfo(np.float32).tiny, 1.0, total)
        return ops.sum(magnitude * self.bin_frequencies, axis=-1) / total

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_frames(input_shape))
