"""Clip-level metadata for the classifier head (report 3: ResNet18/34 and AST on COUGHVID).

Report 3 feeds each clip's age, gender and SNR (from the dataset's metadata) plus its
zero-crossing rate, RMS energy and spectral centroid (from the audio) to the
classifier next to the network's pooled embedding. Here the first three arrive as a
second model input ``metadata`` (a vector the pipeline supplies; ``metadata_dim``
wide), and the last three are computed in-graph from the waveform by
:class:`ClipFeatures` — the frame features of :mod:`coughclf.layers.frontend`
averaged over frames, as ``librosa.feature.*(...).mean()`` gives them.
:class:`BandStatistics` adds the classical anchor's features (each mel band's mean and
standard deviation over time, ``coughclf baseline``) the same way.
:func:`metadata_head_input` wires them into a model.

Example::

    import numpy as np
    from coughclf.layers.metadata import ClipFeatures

    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 440 * t).astype("float32")[None]
    print(ClipFeatures(sample_rate=16000)(tone))  # [[0.0526 0.690 452.8]]: ZCR, RMS, centroid (Hz)
"""

import keras
from keras import ops

from coughclf.errors import CoughclfError
from coughclf.layers.frontend import RMSEnergy, SpectralCentroid, ZeroCrossingRate

CLIP_FEATURE_NAMES = ("zero_crossing_rate", "rms", "spectral_centroid")


@keras.saving.register_keras_serializable(package="coughclf")
class ClipFeatures(keras.layers.Layer):
    """``[batch, samples]`` → ``[batch, 3]``: mean zero-crossing rate, RMS and spectral centroid.

    Each is the frame feature of :mod:`coughclf.layers.frontend` averaged over all
    frames, with librosa's defaults (frames of ``frame_length`` samples every
    ``hop_length``, centred). The centroid is in Hz and the other two are in [0, 1]:
    the values are those librosa reports, unscaled.

    Args:
        sample_rate: waveform sample rate in Hz (for the centroid).
        frame_length: frame (and FFT) length in samples.
        hop_length: frame step in samples.
    """

    def __init__(self, sample_rate=16000, frame_length=2048, hop_length=512, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        self.frame_features = [
            ZeroCrossingRate(frame_length=self.frame_length, hop_length=self.hop_length, name="zcr"),
            RMSEnergy(frame_length=self.frame_length, hop_length=self.hop_length, name="rms"),
            SpectralCentroid(sample_rate=self.sample_rate, n_fft=self.frame_length,
                             hop_length=self.hop_length, name="centroid"),
        ]

    def build(self, input_shape):
        # The centroid's window is a weight: build it before a saved model's weights load.
        for feature in self.frame_features:
            feature.build(input_shape)

    def call(self, waveform):
        return ops.stack([ops.mean(feature(waveform), axis=1) for feature in self.frame_features], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(CLIP_FEATURE_NAMES))

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "frame_length": self.frame_length,
                "hop_length": self.hop_length}


@keras.saving.register_keras_serializable(package="coughclf")
class BandStatistics(keras.layers.Layer):
    """``[batch, frames, bands]`` → ``[batch, 2 * bands]``: each band's mean, then its standard
    deviation, over the frames — the log-mel statistics of the classical baseline
    (:func:`coughclf.baselines.log_mel_statistics`), here of the model's own features."""

    def call(self, features):
        return ops.concatenate([ops.mean(features, axis=1), ops.std(features, axis=1)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[2])


def band_statistics_input(features):
    """:class:`BandStatistics` of ``features``, standardised (a ``BatchNormalization`` without scale
    or offset: the baseline's ``StandardScaler``, estimated while training)."""
    statistics = BandStatistics(name="band_statistics")(features)
    return keras.layers.BatchNormalization(center=False, scale=False, name="band_statistics_standardised")(statistics)


def metadata_head_input(pooled, audio, *, input_mode, metadata_dim=0, clip_features=False,
                        sample_rate=16000, band_statistics=None):
    """Concatenate the optional ``metadata`` input, :class:`ClipFeatures` and band statistics onto ``pooled``.

    Args:
        pooled: the network's pooled embedding ``[batch, pooled_dim]``.
        audio: the model's audio input (the waveform in waveform mode).
        input_mode: the model's input mode; clip features need ``"waveform"``.
        metadata_dim: width of a second input named ``metadata`` (age, gender, SNR…); 0: none.
        clip_features: append the clip's mean ZCR, RMS and spectral centroid (3 values).
        sample_rate: waveform sample rate in Hz.
        band_statistics: the model's ``[batch, frames, bands]`` features, to append their
            standardised :class:`BandStatistics` (``2 * bands`` values); ``None``: none.

    Returns:
        ``(extra_inputs, head_input)``: the list of new ``keras.Input``s (``[]`` or
        ``[metadata]``) and ``[batch, pooled_dim + metadata_dim + 3 * clip_features (+ 2 * bands)]``
        (``pooled`` itself when there is nothing to add). A ``Dense`` head on it has
        exactly that many more weights per class.
    """
    if not isinstance(metadata_dim, int) or metadata_dim < 0:
        raise CoughclfError(f"metadata_dim must be a whole number >= 0 (0: no metadata input), "
                            f"not {metadata_dim!r}")
    if clip_features and input_mode != "waveform":
        raise CoughclfError("clip_features computes ZCR, RMS and spectral centroid from the raw audio: "
                            "use input_mode='waveform', or pass them in the metadata input instead")
    extra_inputs, extras = [], []
    if metadata_dim:
        metadata = keras.Input(shape=(metadata_dim,), name="metadata")
        extra_inputs.append(metadata)
        extras.append(metadata)
    if clip_features:
        extras.append(ClipFeatures(sample_rate=sample_rate, name="clip_features")(audio))
    if band_statistics is not None:
        extras.append(band_statistics_input(band_statistics))
    if not extras:
        return [], pooled
    return extra_inputs, keras.layers.Concatenate(name="with_metadata")([pooled, *extras])
