"""Clip-level metadata: ClipFeatures against librosa, head wiring, serialisation, bad options."""

import keras
import librosa
import numpy as np
import pytest

from conftest import tone
from coughclf.errors import CoughclfError
from coughclf.layers.metadata import BandStatistics, ClipFeatures, metadata_head_input
from coughclf.models import build
from coughclf.models.common import trainable_params


def _librosa_clip_features(signal, sample_rate, frame_length=2048, hop_length=512):
    return np.array([
        librosa.feature.zero_crossing_rate(signal, frame_length=frame_length, hop_length=hop_length).mean(),
        librosa.feature.rms(y=signal, frame_length=frame_length, hop_length=hop_length).mean(),
        librosa.feature.spectral_centroid(y=signal, sr=sample_rate, n_fft=frame_length,
                                          hop_length=hop_length).mean(),
    ])


@pytest.mark.parametrize("sample_rate, frequency, frame_length, hop_length",
                         [(16000, 440.0, 2048, 512), (8000, 1250.0, 512, 128)])
def test_clip_features_match_librosa_means(sample_rate, frequency, frame_length, hop_length):
    signals = np.stack([tone(1.0, sample_rate, frequency, seed=0),
                        tone(1.0, sample_rate, frequency * 1.7, amplitude=0.2, seed=1, noise=0.05)])
    layer = ClipFeatures(sample_rate=sample_rate, frame_length=frame_length, hop_length=hop_length)
    features = keras.ops.convert_to_numpy(layer(signals))
    assert features.shape == (2, 3)
    for signal, row in zip(signals, features):
        np.testing.assert_allclose(row, _librosa_clip_features(signal, sample_rate, frame_length, hop_length),
                                   rtol=1e-4)


def _pooled_model(**options):
    audio = keras.Input((4000,), name="audio")
    pooled = keras.layers.Dense(7, name="embedding")(audio)
    extra_inputs, head_input = metadata_head_input(pooled, audio, sample_rate=8000, **options)
    outputs = keras.layers.Dense(4, name="head")(head_input)
    return keras.Model([audio, *extra_inputs], outputs)


def test_metadata_and_clip_features_widen_the_head_input():
    model = _pooled_model(input_mode="waveform", metadata_dim=3, clip_features=True)
    assert [tensor.name for tensor in model.inputs] == ["audio", "metadata"]
    assert model.get_layer("head").kernel.shape == (7 + 3 + 3, 4)
    assert _pooled_model(input_mode="features").get_layer("head").kernel.shape == (7, 4)


def test_model_with_clip_features_round_trips(tmp_path):
    model = _pooled_model(input_mode="waveform", metadata_dim=2, clip_features=True)
    inputs = {"audio": np.stack([tone(0.5, 8000, 300.0), tone(0.5, 8000, 900.0, seed=4)]),
              "metadata": np.array([[0.3, 1.0], [0.7, 0.0]], "float32")}
    path = tmp_path / "metadata.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("clip_features").get_config()["sample_rate"] == 8000
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))


def test_clip_features_need_the_waveform():
    with pytest.raises(CoughclfError, match="input_mode='waveform'"):
        _pooled_model(input_mode="features", clip_features=True)


@pytest.mark.parametrize("metadata_dim", [-1, 2.5])
def test_bad_metadata_width_is_refused(metadata_dim):
    with pytest.raises(CoughclfError, match="metadata_dim"):
        _pooled_model(input_mode="features", metadata_dim=metadata_dim)


def test_band_statistics_are_each_bands_mean_and_standard_deviation_over_time():
    features = np.random.default_rng(0).normal(3.0, 2.0, (2, 50, 6)).astype("float32")
    statistics = keras.ops.convert_to_numpy(BandStatistics()(features))
    np.testing.assert_allclose(statistics, np.concatenate([features.mean(1), features.std(1)], axis=1), rtol=1e-5)


def test_band_statistics_widen_the_resnet_head_and_round_trip(tmp_path):
    options = dict(input_mode="waveform", num_classes=4, n_mels=32, clip_seconds=0.5)
    plain, widened = build("resnet18", **options), build("resnet18", band_statistics=True, **options)
    assert widened.get_layer("fc").kernel.shape == (512 + 2 * 32, 4)
    assert trainable_params(widened) - trainable_params(plain) == 2 * 32 * 4
    clips = np.stack([tone(0.5, 16000, 300.0), tone(0.5, 16000, 2000.0, seed=3)])
    path = tmp_path / "widened.keras"
    widened.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(clips, verbose=0), widened.predict(clips, verbose=0))
    with pytest.raises(CoughclfError, match="band_statistics"):
        build("resnet18", input_mode="image", image_size=(32, 32), band_statistics=True)
