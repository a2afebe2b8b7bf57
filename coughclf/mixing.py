"""Batch mixing of training examples: mixup, between-class learning, label smoothing.

* **mixup** (Zhang et al. 2018): each example is mixed with a random partner of the batch,
  ``x = λ·x1 + (1 − λ)·x2`` and ``y = λ·y1 + (1 − λ)·y2``, with ``λ ~ Beta(α, α)`` per example.
* **between-class learning** (Tokozume, Ushiku and Harada 2018, "Learning from
  Between-class Examples for Deep Sound Recognition"): the partner is drawn from the
  examples of *another* class, the ratio ``r ~ U(0, 1)``, and the waveforms are mixed
  with their loudness taken into account: with ``G1``, ``G2`` each sound's gain (the
  loudest ~0.1 s frame's A-weighted power, in dB),
  ``p = 1 / (1 + 10^((G1 − G2)/20) · (1 − r)/r)`` and
  ``x = (p·x1 + (1 − p)·x2) / sqrt(p² + (1 − p)²)``, so that the quieter sound is
  still heard in proportion ``r``; the target is ``r·y1 + (1 − r)·y2``.
* **label smoothing** (Szegedy et al. 2016): ``y ← (1 − ε)·y + ε/K`` on training targets only,
  so the validation loss stays the plain cross-entropy.

Where it happens, and why there: on the *training batches of the tf.data pipeline*,
after batching (as the keras-io "MixUp augmentation" example does), not in a layer.

- Mixing changes the targets. A Keras layer sees only the inputs, so an in-model mix
  would need a custom ``train_step`` per backend; a ``map`` over ``(inputs, targets)``
  batches needs nothing from the model and works whatever it is.
- tf.data always runs TensorFlow, whichever Keras backend runs the model, so these are
  plain TensorFlow ops: the same batches reach a JAX model as a TensorFlow one
  (``tests/test_mixing.py`` checks it in a JAX subprocess).
- The pipeline yields waveforms and every model computes its features inside, so the mix
  happens on waveforms for waveform *and* log-mel models: a log-mel model sees the log-mel
  of a mixture of two sounds, as the between-class paper's log-mel CNN did (averaging dB
  values instead would mix the geometric mean of two powers, which no microphone hears).
  Mixup is rank-agnostic, so a pipeline that yields precomputed features mixes them too;
  between-class learning needs waveforms for its gains.
- It comes after the pipeline's balanced sampling and windowing (the partners are other
  examples of the same balanced batch; windows are examples like clips) and before the
  model's own augmentation layers, which then act on the mixture.
- Class weights: Keras' ``fit(class_weight=...)`` weighs a soft target by its argmax
  class only. With mixing the weights are given as per-example sample weights instead,
  the target's expectation ``Σ_k y_k·w_k`` (``r·w1 + (1 − r)·w2``), and ``class_weight``
  must not be passed to ``fit`` as well.

Every draw is stateless from a per-batch key of :func:`coughclf.epoch_keys.random_keys`, as
in :mod:`coughclf.pipeline`: the same seed gives the same mixes, each epoch draws new ones,
and a resumed run draws the mixes of the epochs it resumes.

Configured in ``[augment]`` (see :func:`mixing_from_augment`)::

    [augment]
    between_class = { gain = "a_weighting" }   # or: mixup = { alpha = 0.2 }
    label_smoothing = 0.1
"""

import math
from dataclasses import dataclass

import numpy as np

from coughclf.epoch_keys import random_keys
from coughclf.errors import CoughclfError
from coughclf.pretrained.embedding_views import VIEWS_KEY

MODES = ("mixup", "between_class")
GAINS = ("a_weighting", "rms", "none")
# The [augment] keys this module reads (the others are augmentation layers).
AUGMENT_KEYS = (*MODES, "label_smoothing")
# Gains below this (dB) count as this: silence has no defined gain (the paper's floor).
MIN_GAIN_DB = -80.0
# The paper's gain frames: 2048 samples at 16 kHz, 4096 at 44.1 kHz, i.e. about 0.1 s in a power of two.
GAIN_FRAME_SECONDS = 0.1


@dataclass(frozen=True)
class BatchMixing:
    """What to do to training batches: ``mode`` None (no mixing), ``"mixup"`` or ``"between_class"``.

    ``alpha``: mixup's Beta(α, α); ``gain``: between-class loudness measure (``"a_weighting"``
    as in the paper, ``"rms"``, or ``"none"``: mix at the plain ratio); ``probability``: the
    share of examples that are mixed (the others keep their own audio and target);
    ``label_smoothing``: ε; ``seed``: seeds every draw.
    """

    mode: str | None = None
    alpha: float = 0.2
    gain: str = "a_weighting"
    probability: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.mode is not None and self.mode not in MODES:
            raise CoughclfError(f"batch mixing: mode {self.mode!r} is not one of {MODES}")
        if self.gain not in GAINS:
            raise CoughclfError(f"batch mixing: gain {self.gain!r} is not one of {GAINS}")
        if not self.alpha > 0:
            raise CoughclfError(f"batch mixing: mixup alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.probability <= 1.0:
            raise CoughclfError(f"batch mixing: probability must lie in [0, 1], got {self.probability}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise CoughclfError(f"batch mixing: label_smoothing must lie in [0, 1), got {self.label_smoothing}")

    @property
    def active(self):
        return self.mode is not None or self.label_smoothing > 0


_MODE_OPTIONS = {"mixup": ("alpha", "probability"), "between_class": ("gain", "probability")}


def mixing_from_augment(augment, source="<config>", seed=0):
    """Split an ``[augment]`` table into ``(BatchMixing, the rest)``: the rest builds the augmentation layers.

    ``mixup = {alpha, probability}`` or ``between_class = {gain, probability}`` (``true`` for the
    defaults; not both) and ``label_smoothing = ε``. ``[augment].seed`` seeds the draws when set,
    else ``seed`` (the run's seed).
    """
    rest = dict(augment or {})
    rest.pop(VIEWS_KEY, None)  # views of cached embeddings: not a layer (coughclf.pretrained.embedding_views)
    settings = {"seed": int(rest.get("seed", seed))}
    smoothing = rest.pop("label_smoothing", 0.0)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
        raise CoughclfError(f"{source}: augment.label_smoothing must be a number in [0, 1), got {smoothing!r}")
    settings["label_smoothing"] = float(smoothing)
    chosen = [mode for mode in MODES if rest.get(mode) not in (None, False)]
    for mode in MODES:
        rest.pop(mode, None)
    if len(chosen) > 1:
        raise CoughclfError(f"{source}: augment.mixup and augment.between_class are both set; keep one")
    if chosen:
        mode = chosen[0]
        options = augment[mode]
        options = {} if options is True else options
        if not isinstance(options, dict):
            raise CoughclfError(f"{source}: augment.{mode} must be true or a table of "
                                f"{', '.join(_MODE_OPTIONS[mode])}, got {options!r}")
        unknown = sorted(set(options) - set(_MODE_OPTIONS[mode]))
        if unknown:
            raise CoughclfError(f"{source}: unknown key augment.{mode}.{unknown[0]}; valid keys: "
                                f"{', '.join(_MODE_OPTIONS[mode])}")
        settings.update(mode=mode, **options)
    try:
        return BatchMixing(**settings), rest
    except CoughclfError as error:
        raise CoughclfError(f"{source}: augment: {error}; fix the value") from None
    except (TypeError, ValueError) as error:
        raise CoughclfError(f"{source}: augment.{settings.get('mode')}: bad value ({error}); fix the value") from None


# --- gains ---------------------------------------------------------------------------------------

def gain_frame_length(sample_rate):
    """Samples per gain frame: about ``GAIN_FRAME_SECONDS`` as a power of two (2048 at 16 kHz, 4096 at 44.1 kHz)."""
    return 2 ** round(math.log2(sample_rate * GAIN_FRAME_SECONDS))


def a_weighting_db(sample_rate, n_fft):
    """The A-weighting curve in dB at the ``n_fft // 2 + 1`` rFFT bins (IEC 61672; 0 dB at 1 kHz,
    floored at ``MIN_GAIN_DB``), written as in the between-class paper's code."""
    frequency_squared = np.linspace(0, sample_rate / 2, n_fft // 2 + 1) ** 2
    frequency_squared[0] = 1.0  # the DC bin: keep the logarithms finite (it is floored anyway)
    weight = 2.0 + 20.0 * (2 * np.log10(12194.0) + 2 * np.log10(frequency_squared)
                           - np.log10(frequency_squared + 12194.0 ** 2)
                           - np.log10(frequency_squared + 20.6 ** 2)
                           - 0.5 * np.log10(frequency_squared + 107.7 ** 2)
                           - 0.5 * np.log10(frequency_squared + 737.9 ** 2))
    return np.maximum(weight, MIN_GAIN_DB)


def sound_gain_db(audio, sample_rate, gain="a_weighting"):
    """Each waveform's gain in dB ``[batch]``: the largest power over half-overlapping frames of
    :func:`gain_frame_length` samples (A-weighted power spectrum of a periodic-Hann frame, or the
    mean square for ``"rms"``), floored at ``MIN_GAIN_DB``. ``"none"`` gives 0 for every sound."""
    import tensorflow as tf

    audio = tf.convert_to_tensor(audio, tf.float32)
    if gain == "none":
        return tf.zeros(tf.shape(audio)[:1])
    n_fft = gain_frame_length(sample_rate)
    short = tf.maximum(n_fft - tf.shape(audio)[1], 0)  # a clip shorter than a frame is one padded frame
    frames = tf.signal.frame(tf.pad(audio, [[0, 0], [0, short]]), n_fft, n_fft // 2)
    if gain == "rms":
        power = tf.reduce_mean(tf.square(frames), axis=-1)
    else:
        spectrum = tf.signal.rfft(frames * tf.signal.hann_window(n_fft, periodic=True))
        weights = tf.constant(10.0 ** (a_weighting_db(sample_rate, n_fft) / 10.0), tf.float32)
        power = tf.reduce_sum(tf.square(tf.abs(spectrum)) * weights, axis=-1)
    loudest = tf.maximum(tf.reduce_max(power, axis=-1), 10.0 ** (MIN_GAIN_DB / 10.0))
    return 10.0 * tf.math.log(loudest) / math.log(10.0)


def gain_aware_proportion(ratio, gain1_db, gain2_db):
    """The paper's ``p = 1 / (1 + 10^((G1 − G2)/20)·(1 − r)/r)``, written ``r / (r + 10^(…)·(1 − r))``
    so that ``r = 0`` gives 0 instead of a division by zero."""
    import tensorflow as tf

    louder = tf.pow(10.0, (gain1_db - gain2_db) / 20.0)
    return ratio / (ratio + louder * (1.0 - ratio))


# --- mixing one batch ----------------------------------------------------------------------------

def _partners(labels, mode, seed):
    """``(partner index [B], has_partner [B] bool)``: a random other example (mixup: a permutation
    of the batch), or a random example of another class (between-class; none if the batch has one class)."""
    import tensorflow as tf

    batch = tf.shape(labels)[0]
    if mode == "mixup":
        order = tf.argsort(tf.random.stateless_uniform([batch], seed=seed))
        return order, tf.ones([batch], tf.bool)
    scores = tf.random.stateless_uniform([batch, batch], seed=seed)
    allowed = tf.not_equal(labels[:, None], labels[None, :])
    partner = tf.argmax(tf.where(allowed, scores, -1.0), axis=1, output_type=tf.int32)
    return partner, tf.reduce_any(allowed, axis=1)


def _ratios(batch, mixing, seed):
    import tensorflow as tf

    if mixing.mode == "mixup":
        shape = tf.stack([batch])
        first = tf.random.stateless_gamma(shape, seed=seed, alpha=mixing.alpha)
        second = tf.random.stateless_gamma(shape, seed=seed + tf.constant([0, 1], seed.dtype), alpha=mixing.alpha)
        return first / tf.maximum(first + second, 1e-30)
    return tf.random.stateless_uniform([batch], seed=seed)


def mix_batch(inputs, targets, seed, mixing, sample_rate):
    """One batch mixed: ``(inputs, targets, ratio [B], partner [B])``.

    ``inputs``: the audio ``[B, ...]``, or a dict with ``"audio"`` (other float entries, such as
    ``"metadata"``, are mixed at the target ratio; others, such as ``"id"``, are kept);
    ``targets``: one-hot ``[B, K]``; ``seed``: a ``[2]`` integer tensor. ``ratio`` is each
    example's share of its own target (1 where it was not mixed) and ``partner`` the index of the
    example mixed into it. Label smoothing is not applied here (:func:`mix_batches` does it).
    """
    import tensorflow as tf

    seed = tf.cast(seed, tf.int64)
    audio = inputs["audio"] if isinstance(inputs, dict) else inputs
    audio = tf.convert_to_tensor(audio)
    targets = tf.convert_to_tensor(targets, tf.float32)
    batch = tf.shape(targets)[0]
    partner, has_partner = _partners(tf.argmax(targets, axis=1), mixing.mode, seed)
    chosen = tf.random.stateless_uniform([batch], seed=seed + tf.constant([0, 2], tf.int64)) < mixing.probability
    ratio = tf.where(chosen & has_partner, _ratios(batch, mixing, seed + tf.constant([0, 3], tf.int64)), 1.0)

    def mixed_linearly(values):
        weight = tf.reshape(tf.cast(ratio, values.dtype), tf.concat([[batch], tf.ones([tf.rank(values) - 1],
                                                                                     tf.int32)], 0))
        return weight * values + (1.0 - weight) * tf.gather(values, partner)

    if mixing.mode == "between_class":
        if audio.shape.rank != 2:
            raise CoughclfError(f"between-class mixing needs waveform batches [batch, samples], got shape "
                                f"{audio.shape}; use mixup for feature inputs")
        gains = sound_gain_db(audio, sample_rate, mixing.gain)
        share = gain_aware_proportion(ratio, gains, tf.gather(gains, partner))[:, None]
        mixed_audio = (share * audio + (1.0 - share) * tf.gather(audio, partner)) / tf.sqrt(
            share ** 2 + (1.0 - share) ** 2)
    else:
        mixed_audio = mixed_linearly(audio)
    if isinstance(inputs, dict):
        inputs = {name: tf.convert_to_tensor(values) for name, values in inputs.items()}
        mixed = {name: (mixed_linearly(values) if name != "audio" and values.dtype.is_floating else values)
                 for name, values in inputs.items()}
        mixed["audio"] = mixed_audio
    else:
        mixed = mixed_audio
    return mixed, mixed_linearly(targets), ratio, partner


def smooth_labels(targets, label_smoothing):
    """``(1 − ε)·targets + ε/K``."""
    num_classes = targets.shape[-1]
    return targets * (1.0 - label_smoothing) + label_smoothing / num_classes


def class_weight_vector(class_weights, num_classes):
    """``{class: weight}`` (missing classes: 1, as Keras does) as a ``[num_classes]`` array."""
    return np.array([class_weights.get(index, 1.0) for index in range(num_classes)], np.float32)


def mix_batches(dataset, mixing, *, sample_rate, class_weights=None):
    """``dataset`` of ``(inputs, one-hot targets)`` training batches with ``mixing`` applied.

    With ``class_weights`` (``{class index: weight}``) it yields ``(inputs, targets, sample
    weights)``, each weight the mixed target's expected class weight; pass no ``class_weight``
    to ``fit`` then. A ``mixing`` that does nothing returns ``dataset`` as it is.
    """
    import tensorflow as tf

    if not mixing.active and class_weights is None:
        return dataset
    num_classes = dataset.element_spec[1].shape[-1]
    if num_classes is None:
        raise CoughclfError("batch mixing needs targets with a known number of classes (one-hot [batch, K])")
    weights = None if class_weights is None else tf.constant(class_weight_vector(class_weights, num_classes))
    keys = random_keys(mixing.seed)

    def transform(batch, key):
        inputs, targets = batch
        targets = tf.cast(targets, tf.float32)
        if mixing.mode is not None:
            inputs, targets, _, _ = mix_batch(inputs, targets, tf.stack([key, tf.constant(0, tf.int64)]),
                                              mixing, sample_rate)
        smoothed = smooth_labels(targets, mixing.label_smoothing) if mixing.label_smoothing else targets
        if weights is None:
            return inputs, smoothed
        return inputs, smoothed, tf.linalg.matvec(targets, weights)

    return tf.data.Dataset.zip(dataset, keys).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
