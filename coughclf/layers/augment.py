"""Data augmentation as Keras layers that run inside the model, batched and seeded.

Waveform layers take ``[batch, samples]``; spectrogram layers take the
front end's ``[batch, frames, n_mels]``. Every layer is the identity unless
called with ``training=True``. Each draws its per-example parameters with
``sample_parameters`` (from a ``keras.random.SeedGenerator``, so the same seed
gives the same augmentations) and applies them with the deterministic
``transform(inputs, parameters)``; the split lets tests and other backends
replay exactly the same augmentation.

``build_augmentation(config)`` turns the training config's ``augmentation``
mapping into the two layer lists the model builders accept.
"""

from pathlib import Path

import keras
import numpy as np
from keras import ops

from coughclf.audio import AUDIO_SUFFIXES
from coughclf.errors import CoughclfError
from coughclf.layers.augment_base import (RandomAugmentation, check_probability, check_range, gather_along_time,
                                          interpolate_along_time, mix_at_snr)
from coughclf.layers.frontend import add_constant, check_choice
# Re-exported: the spectrogram layers live in their own module; build_augmentation and users find them here.
from coughclf.layers.spectrogram_augment import FrequencyMasking, SpecAugment, TimeMasking, TimeWarp  # noqa: F401

NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


@keras.saving.register_keras_serializable(package="coughclf")
class PitchShift(RandomAugmentation):
    """Shift pitch by a random number of semitones in ``[-max_semitones, max_semitones]``.

    Method: resampling. The waveform is read at ``2 ** (semitones / 12)``
    times the original rate around its centre (linear interpolation), which
    multiplies every frequency by that ratio; the result is cropped or
    zero-padded to the original length. Duration changes with pitch (as in a
    tape played faster), which is harmless for clip classification and keeps
    the layer a cheap gather instead of a phase vocoder.
    """

    def __init__(self, max_semitones=2.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_semitones = float(max_semitones)

    def sample_parameters(self, inputs):
        batch = ops.shape(inputs)[0]
        return {"semitones": self.uniform((batch,), -self.max_semitones, self.max_semitones)}

    def transform(self, inputs, parameters):
        rate = ops.power(2.0, parameters["semitones"] / 12.0)[:, None]
        samples = ops.shape(inputs)[1]
        time = ops.arange(samples, dtype="float32")[None, :]
        centre = (ops.cast(samples, "float32") - 1.0) / 2.0
        positions = centre + (time - centre) * rate
        inside = ops.logical_and(positions >= 0.0, positions <= ops.cast(samples - 1, "float32"))
        return ops.where(inside, interpolate_along_time(inputs, positions), 0.0)

    def get_config(self):
        config = super().get_config()
        config.update(max_semitones=self.max_semitones)
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class ColouredNoise(RandomAugmentation):
    """Add white, pink or brown noise at a random SNR in ``snr_db`` (dB).

    Gaussian white noise is shaped in the frequency domain so its power
    spectral density falls as ``1 / f ** alpha`` (alpha 0 white, 1 pink,
    2 brown; DC removed), then scaled to the drawn SNR against the example's
    mean power. The colour is drawn uniformly from ``colours``; each example
    is noised with ``probability``.
    """

    def __init__(
        self, colours=("white", "pink", "brown"), snr_db=(10.0, 30.0), probability=1.0, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        name = type(self).__name__
        if isinstance(colours, str) or not colours:
            raise CoughclfError(
                f"{name}: colours={colours!r} must be a non-empty list such as ['white', 'pink']"
            )
        for colour in colours:
            check_choice(name, "colours", colour, tuple(NOISE_EXPONENTS))
        self.colours = list(colours)
        self.snr_db = check_range(name, "snr_db", snr_db)
        self.probability = check_probability(name, probability)

    def sample_parameters(self, inputs):
        batch = ops.shape(inputs)[0]
        exponents = ops.convert_to_tensor([NOISE_EXPONENTS[colour] for colour in self.colours], "float32")
        choice = ops.cast(ops.floor(self.uniform((batch,)) * len(self.colours)), "int32")
        return {
            "white_noise": keras.random.normal(ops.shape(inputs), seed=self.seed_generator),
            "exponent": ops.take(exponents, ops.minimum(choice, len(self.colours) - 1)),
            "snr_db": self.uniform((batch,), *self.snr_db),
            "apply": self.chosen(batch, self.probability),
        }

    def transform(self, inputs, parameters):
        samples = ops.shape(inputs)[1]
        real, imag = ops.rfft(parameters["white_noise"], samples)
        frequency = ops.arange(ops.shape(real)[1], dtype="float32")[None, :]
        gain = ops.power(ops.maximum(frequency, 1.0), -parameters["exponent"][:, None] / 2.0)
        gain = ops.where(frequency > 0, gain, 0.0)
        noise = ops.irfft((real * gain, imag * gain), samples)
        return mix_at_snr(inputs, noise, parameters["snr_db"], parameters["apply"])

    def get_config(self):
        config = super().get_config()
        config.update(colours=self.colours, snr_db=list(self.snr_db), probability=self.probability)
        return config


def audio_files(paths):
    """Expand folders in ``paths`` into their audio files (sorted); keep files as given."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
        else:
            files.append(path)
    return files


def load_noise_bank(paths, sample_rate=16000, seconds=1.0):
    """Noise bank ``[n, samples]`` float32 from audio files or folders of them.

    Each file is decoded as every recording is (:func:`coughclf.audio.load_audio`: mixed to
    mono, resampled with soxr, a pipe, device or implausible header refused) and cut into
    consecutive ``seconds``-long excerpts (a shorter file is looped to one
    excerpt), as Speech Commands' ``_background_noise_`` recordings are used.
    """
    from coughclf.audio import load_audio
    from coughclf.errors import AudioDecodeError

    length = int(round(seconds * sample_rate))
    files = audio_files(paths)
    if not files or length <= 0:
        raise CoughclfError(
            f"load_noise_bank: no noise audio in {list(map(str, paths))} (seconds={seconds}); "
            "give audio files or folders that contain them"
        )
    excerpts = []
    for path in files:
        try:
            audio = load_audio(path, sample_rate)
        except AudioDecodeError as error:
            raise CoughclfError(
                f"{path}: cannot use noise file ({error.reason}); fix or remove it from the noise list"
            ) from None
        if audio.size < length:
            audio = np.resize(audio, length)
        usable = audio.size // length * length
        excerpts.append(audio[:usable].reshape(-1, length))
    return np.concatenate(excerpts).astype(np.float32)


@keras.saving.register_keras_serializable(package="coughclf")
class BackgroundNoise(RandomAugmentation):
    """Mix a random excerpt of a random noise-bank row at a random SNR in ``snr_db``.

    ``noise_bank`` is a float32 array ``[n, noise_samples]`` (see
    :func:`load_noise_bank`); it is stored as a non-trainable weight, so it
    travels with saved models but not in the config (the config keeps only its
    shape). A bank row shorter than the clip is looped.
    """

    def __init__(
        self, noise_bank=None, snr_db=(0.0, 20.0), probability=1.0, bank_shape=None, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        name = type(self).__name__
        if noise_bank is not None:
            noise_bank = np.asarray(noise_bank, dtype=np.float32)
            bank_shape = noise_bank.shape
        if bank_shape is None or len(bank_shape) != 2 or min(bank_shape) < 1:
            raise CoughclfError(
                f"{name}: noise_bank must be a non-empty array [n, samples] "
                "(build one with coughclf.layers.load_noise_bank)"
            )
        self.initial_bank = noise_bank
        self.bank_shape = tuple(int(size) for size in bank_shape)
        self.snr_db = check_range(name, "snr_db", snr_db)
        self.probability = check_probability(name, probability)

    def build(self, input_shape):
        bank = self.initial_bank if self.initial_bank is not None else np.zeros(self.bank_shape, np.float32)
        self.noise_bank = add_constant(self, "noise_bank", bank)
        self.initial_bank = None

    def sample_parameters(self, inputs):
        batch = ops.shape(inputs)[0]
        rows, bank_samples = self.bank_shape
        spare = ops.maximum(bank_samples - ops.shape(inputs)[1], 0)
        return {
            "row": ops.minimum(ops.cast(self.uniform((batch,)) * rows, "int32"), rows - 1),
            "start": ops.cast(self.uniform((batch,)) * ops.cast(spare + 1, "float32"), "int32"),
            "snr_db": self.uniform((batch,), *self.snr_db),
            "apply": self.chosen(batch, self.probability),
        }

    def transform(self, inputs, parameters):
        bank_samples = self.bank_shape[1]
        time = ops.arange(ops.shape(inputs)[1], dtype="int32")[None, :]
        positions = (parameters["start"][:, None] + time) % bank_samples
        flat_positions = parameters["row"][:, None] * bank_samples + positions
        excerpt = ops.take(ops.reshape(self.noise_bank, (-1,)), flat_positions)
        return mix_at_snr(inputs, excerpt, parameters["snr_db"], parameters["apply"])

    def get_config(self):
        config = super().get_config()
        config.update(
            snr_db=list(self.snr_db), probability=self.probability, bank_shape=list(self.bank_shape)
        )
        return config


class ProbabilisticAugmentation(RandomAugmentation):
    """Base of the augmentations applied whole to each example with ``probability``."""

    def __init__(self, probability=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.probability = check_probability(type(self).__name__, probability)

    def sample_parameters(self, inputs):
        return {"apply": self.chosen(ops.shape(inputs)[0], self.probability)}

    def get_config(self):
        config = super().get_config()
        config.update(probability=self.probability)
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class TimeInversion(ProbabilisticAugmentation):
    """Play the example backwards, with ``probability`` per example."""

    def transform(self, inputs, parameters):
        return ops.where(parameters["apply"][:, None], ops.flip(inputs, axis=1), inputs)


@keras.saving.register_keras_serializable(package="coughclf")
class PolarityInversion(ProbabilisticAugmentation):
    """Negate the waveform, with ``probability`` per example."""

    def transform(self, inputs, parameters):
        return ops.where(parameters["apply"][:, None], -inputs, inputs)


@keras.saving.register_keras_serializable(package="coughclf")
class RandomGain(RandomAugmentation):
    """Multiply each example by a gain drawn uniformly in ``[min_db, max_db]`` dB."""

    def __init__(self, min_db=-6.0, max_db=6.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.min_db, self.max_db = check_range(type(self).__name__, "(min_db, max_db)", (min_db, max_db))

    def sample_parameters(self, inputs):
        return {"gain_db": self.uniform((ops.shape(inputs)[0],), self.min_db, self.max_db)}

    def transform(self, inputs, parameters):
        return inputs * ops.power(10.0, parameters["gain_db"] / 20.0)[:, None]

    def get_config(self):
        config = super().get_config()
        config.update(min_db=self.min_db, max_db=self.max_db)
        return config


@keras.saving.register_keras_serializable(package="coughclf")
class TimeShift(RandomAugmentation):
    """Shift each example in time by a random whole number of samples.

    The largest shift is ``max_seconds`` (at ``sample_rate``) or
    ``max_fraction`` of the example length (give exactly one). ``fill="circular"``
    wraps what falls off one end round to the other; ``fill="zero"`` leaves silence.
    """

    def __init__(
        self, max_seconds=None, max_fraction=None, sample_rate=16000, fill="circular", seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        name = type(self).__name__
        if (max_seconds is None) == (max_fraction is None):
            raise CoughclfError(f"{name}: give exactly one of max_seconds or max_fraction")
        check_choice(name, "fill", fill, ("circular", "zero"))
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.max_fraction = None if max_fraction is None else float(max_fraction)
        self.sample_rate = int(sample_rate)
        self.fill = fill

    def sample_parameters(self, inputs):
        batch, samples = ops.shape(inputs)[0], ops.shape(inputs)[1]
        if self.max_seconds is not None:
            largest = float(round(self.max_seconds * self.sample_rate))
        else:
            largest = ops.floor(self.max_fraction * ops.cast(samples, "float32"))
        return {"shift": ops.cast(ops.round(self.uniform((batch,), -1.0, 1.0) * largest), "int32")}

    def transform(self, inputs, parameters):
        samples = ops.shape(inputs)[1]
        source = ops.arange(samples, dtype="int32")[None, :] - parameters["shift"][:, None]
        if self.fill == "circular":
            return gather_along_time(inputs, source % samples)
        inside = ops.logical_and(source >= 0, source < samples)
        return ops.where(inside, gather_along_time(inputs, source), 0.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            max_seconds=self.max_seconds,
            max_fraction=self.max_fraction,
            sample_rate=self.sample_rate,
            fill=self.fill,
        )
        return config


def background_noise_from_files(paths=(), sample_rate=16000, seconds=1.0, **options):
    """BackgroundNoise whose bank :func:`load_noise_bank` reads from ``paths``."""
    return BackgroundNoise(load_noise_bank(paths, sample_rate, seconds), **options)


WAVEFORM_AUGMENTATIONS = {
    "pitch_shift": PitchShift,
    "coloured_noise": ColouredNoise,
    "background_noise": background_noise_from_files,
    "time_inversion": TimeInversion,
    "polarity_inversion": PolarityInversion,
    "random_gain": RandomGain,
    "time_shift": TimeShift,
}
SPECTROGRAM_AUGMENTATIONS = {
    "spec_augment": SpecAugment,
    "time_warp": TimeWarp,
    "frequency_masking": FrequencyMasking,
    "time_masking": TimeMasking,
}


def build_augmentation(config):
    """Build ``(waveform_layers, spec_layers)`` from the training config's augmentation mapping.

    Keys are layer names in snake case (``pitch_shift``, ``coloured_noise``,
    ``background_noise``, ``time_inversion``, ``polarity_inversion``,
    ``random_gain``, ``time_shift``, ``spec_augment``, ``time_warp``,
    ``frequency_masking``, ``time_masking``), values their options (None or
    false leaves one out). Layers apply in the mapping's order. ``background_noise``
    takes ``paths`` (files or folders), ``seconds`` and ``sample_rate`` for
    :func:`load_noise_bank`. An optional top-level ``seed`` seeds every layer
    that has none (``seed + position``), so a run is reproducible.
    """
    config = dict(config or {})
    base_seed = config.pop("seed", None)
    waveform_layers, spec_layers = [], []
    for position, (key, options) in enumerate(config.items()):
        if options is None or options is False:
            continue
        options = {} if options is True else dict(options)
        if base_seed is not None:
            options.setdefault("seed", int(base_seed) + position)
        if key in WAVEFORM_AUGMENTATIONS:
            target, make = waveform_layers, WAVEFORM_AUGMENTATIONS[key]
        elif key in SPECTROGRAM_AUGMENTATIONS:
            target, make = spec_layers, SPECTROGRAM_AUGMENTATIONS[key]
        else:
            known = sorted(WAVEFORM_AUGMENTATIONS) + sorted(SPECTROGRAM_AUGMENTATIONS)
            raise CoughclfError(f"augmentation: unknown key {key!r}; use one of {known}")
        try:
            target.append(make(**options))
        except (TypeError, ValueError) as error:
            raise CoughclfError(
                f"augmentation {key}: bad options {options} ({error}); fix the config"
            ) from None
    return waveform_layers, spec_layers
