"""Front-end layers against librosa on real clips, plus TFLite export and serialisation."""

import functools
import json

import keras
import librosa
import numpy as np
import pytest

from conftest import tone
from coughclf.errors import CoughclfError
from coughclf.layers import MFCC, LogMelSpectrogram, RMSEnergy, SpectralCentroid, ZeroCrossingRate
from coughclf.layers.frontend import MEL_BAND_RUNS, banded_filterbank

SAMPLE_RATE = 16000
PARITY_DB = 0.01
DYNAMIC_RANGE_DB = 80.0
CONFIGS = [
    pytest.param(dict(n_fft=1024, hop_length=512, n_mels=128), id="1024-512-128"),
    pytest.param(dict(n_fft=512, hop_length=160, n_mels=64), id="512-160-64"),
]
SCALES = [
    pytest.param(dict(mel_scale="slaney", norm="slaney"), id="slaney-norm"),
    pytest.param(dict(mel_scale="htk", norm=None), id="htk-nonorm"),
]


@functools.lru_cache(maxsize=1)
def load_real_clips(root):
    """A few FSDD wavs (8 kHz) and covid19_cough mp3s (8 and 48 kHz), mono, resampled to 16 kHz."""
    import soundfile
    import soxr

    fsdd = sorted((root / "fsdd" / "recordings").glob("*.wav"))[::997][:3]
    coughs = [p for p in sorted((root / "covid19_cough" / "raw").glob("*.mp3")) if p.stat().st_size > 1000][:3]
    clips = []
    for path in fsdd + coughs:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        clips.append(soxr.resample(audio.mean(axis=1), rate, SAMPLE_RATE).astype(np.float32))
    return tuple(clips)


@pytest.fixture
def real_clips(shared_data):
    return load_real_clips(shared_data)


def librosa_log_mel(clip, n_fft, hop_length, n_mels, mel_scale="slaney", norm="slaney", power=2.0,
                    pad_mode="constant", win_length=None, ref=np.max, top_db=None):
    """The reports' feature: librosa melspectrogram + power_to_db, in float64, time-major."""
    mel = librosa.feature.melspectrogram(
        y=clip.astype(np.float64), sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
        n_mels=n_mels, htk=mel_scale == "htk", norm=norm, center=True, pad_mode=pad_mode, power=power,
    )
    return librosa.power_to_db(mel, ref=ref, amin=1e-10, top_db=top_db).T


def run_layer(layer, clip):
    return np.asarray(layer(clip[None]))[0]


def worst_db_error(ours, reference):
    """Largest |difference| over the bins within 80 dB of the clip's maximum."""
    loud = reference >= reference.max() - DYNAMIC_RANGE_DB
    return float(np.abs(ours - reference)[loud].max())


@pytest.mark.parametrize("stft", ["fft", "matmul"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("config", CONFIGS)
def test_log_mel_matches_librosa_on_real_clips(real_clips, config, scale, stft):
    layer = LogMelSpectrogram(sample_rate=SAMPLE_RATE, stft=stft, top_db=None, **config, **scale)
    for clip in real_clips:
        reference = librosa_log_mel(clip, **config, **scale)
        ours = run_layer(layer, clip)
        assert ours.shape == reference.shape
        assert worst_db_error(ours, reference) <= PARITY_DB


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("config", CONFIGS)
def test_banded_mel_projection_matches_librosa_on_real_clips(real_clips, config, scale):
    layer = LogMelSpectrogram(sample_rate=SAMPLE_RATE, mel_projection="banded", top_db=None, **config, **scale)
    for clip in real_clips:
        assert worst_db_error(run_layer(layer, clip), librosa_log_mel(clip, **config, **scale)) <= PARITY_DB


@pytest.mark.filterwarnings("ignore:Empty filters detected")
@pytest.mark.parametrize("options", [dict(n_fft=1024, n_mels=128), dict(n_fft=256, n_mels=128),
                                     dict(n_fft=512, n_mels=40, fmin=300.0, fmax=7900.0, htk=True, norm=None)])
def test_banded_filterbank_is_the_dense_product_with_few_weights(options):
    """Empty filters (too many mels for n_fft) and bands ending at the last bin included."""
    filterbank = librosa.filters.mel(sr=SAMPLE_RATE, **options, dtype=np.float64)
    indices, weights, shape = banded_filterbank(filterbank)
    assert len(shape) <= MEL_BAND_RUNS and sum(count for count, _ in shape) == filterbank.shape[0]
    assert indices.min() >= 0 and indices.max() < filterbank.shape[1]
    power = np.random.default_rng(0).random((filterbank.shape[1], 5))
    products, mels = power[indices] * weights[:, None], []
    for count, width in shape:
        mels.append(products[: count * width].reshape(count, width, -1).sum(axis=1))
        products = products[count * width :]
    np.testing.assert_allclose(np.concatenate(mels), filterbank @ power, rtol=1e-12, atol=1e-15)
    assert len(weights) < 0.1 * filterbank.size


def test_top_db_clips_each_example_like_librosa(real_clips):
    config = dict(n_fft=512, hop_length=160, n_mels=64)
    layer = LogMelSpectrogram(sample_rate=SAMPLE_RATE, top_db=60.0, **config)
    for clip in real_clips:
        reference = librosa_log_mel(clip, **config, top_db=60.0)
        ours = run_layer(layer, clip)
        assert ours.min() == pytest.approx(-60.0, abs=1e-4)
        assert np.abs(ours - reference).max() <= PARITY_DB


def test_options_match_librosa_reflect_padding_short_window_magnitude_fixed_ref():
    clip = tone(seconds=0.7, frequency=1234.0, noise=0.05)
    options = dict(n_fft=512, hop_length=128, win_length=400, n_mels=40, power=1.0, pad_mode="reflect")
    layer = LogMelSpectrogram(sample_rate=SAMPLE_RATE, ref=1.0, top_db=None, **options)
    reference = librosa_log_mel(clip, **options, ref=1.0)
    assert worst_db_error(run_layer(layer, clip), reference) <= PARITY_DB


def test_stft_modes_agree_within_float32_round_off(real_clips):
    fft = LogMelSpectrogram(sample_rate=SAMPLE_RATE, stft="fft")
    matmul = LogMelSpectrogram(sample_rate=SAMPLE_RATE, stft="matmul")
    for clip in real_clips:
        by_fft, by_matmul = run_layer(fft, clip), run_layer(matmul, clip)
        loud = by_fft > -60.0
        assert np.abs(by_fft - by_matmul)[loud].max() < 0.005


def test_batch_examples_are_independent():
    loud, quiet = tone(frequency=300.0, amplitude=0.8), tone(frequency=2000.0, amplitude=0.01, seed=1)
    layer = LogMelSpectrogram(sample_rate=SAMPLE_RATE, normalize="per_example")
    batch = np.asarray(layer(np.stack([loud, quiet])))
    np.testing.assert_allclose(batch[1], run_layer(layer, quiet), atol=1e-4)
    assert np.abs(batch.mean(axis=(1, 2))).max() < 1e-4
    np.testing.assert_allclose(batch.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_frame_features_match_librosa(real_clips):
    def relative(ours, reference):
        floor = 1e-3 * np.abs(reference).max()
        return float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), floor)))

    centroid_fft, centroid_matmul = SpectralCentroid(SAMPLE_RATE), SpectralCentroid(SAMPLE_RATE, stft="matmul")
    for clip in real_clips:
        zcr = librosa.feature.zero_crossing_rate(clip)[0]
        rms = librosa.feature.rms(y=clip)[0]
        centroid = librosa.feature.spectral_centroid(y=clip.astype(np.float64), sr=SAMPLE_RATE)[0]
        assert np.abs(run_layer(ZeroCrossingRate(), clip) - zcr).max() <= 1e-6
        assert relative(run_layer(RMSEnergy(), clip), rms) <= 1e-4
        assert relative(run_layer(centroid_fft, clip), centroid) <= 1e-4
        assert relative(run_layer(centroid_matmul, clip), centroid) <= 1e-4


def test_silent_frames_give_zero_centroid_and_rms():
    silence = np.zeros((1, 8000), np.float32)
    assert np.asarray(SpectralCentroid(SAMPLE_RATE)(silence)).max() == 0.0
    assert np.asarray(RMSEnergy()(silence)).max() == 0.0


@pytest.mark.parametrize("lifter", [0.0, 22.0])
def test_mfcc_matches_librosa(real_clips, lifter):
    layer = MFCC(sample_rate=SAMPLE_RATE, n_mfcc=20, lifter=lifter, n_fft=1024, hop_length=512)
    for clip in real_clips:
        reference = librosa.feature.mfcc(
            y=clip.astype(np.float64), sr=SAMPLE_RATE, n_mfcc=20, lifter=lifter, n_fft=1024, hop_length=512
        ).T
        ours = run_layer(layer, clip)
        assert ours.shape == reference.shape
        assert np.abs(ours - reference).max() <= 1e-3 * np.abs(reference).max()


def test_keras_mel_spectrogram_does_not_match_librosa(real_clips):
    """Why LogMelSpectrogram exists: Keras's own layer differs from librosa by dBs."""
    config = dict(n_fft=1024, hop_length=512, n_mels=128)
    keras_layer = keras.layers.MelSpectrogram(
        fft_length=1024, sequence_stride=512, num_mel_bins=128, sampling_rate=SAMPLE_RATE,
        min_freq=0.0, max_freq=SAMPLE_RATE / 2, power_to_db=True, top_db=80.0, ref_power=1.0,
    )
    ours = LogMelSpectrogram(sample_rate=SAMPLE_RATE, ref=1.0, top_db=80.0, **config)
    clip = real_clips[-1]
    reference = librosa_log_mel(clip, **config, ref=1.0, top_db=80.0)
    by_keras = np.asarray(keras_layer(clip[None]))[0].T
    assert by_keras.shape == reference.shape
    assert worst_db_error(by_keras, reference) > 1.0
    assert worst_db_error(run_layer(ours, clip), reference) <= PARITY_DB


def test_output_shape_matches_librosa_frame_count():
    for samples in (16000, 16001, 1000):
        for layer, extra in [(LogMelSpectrogram(n_fft=512, hop_length=160, n_mels=64), (64,)),
                             (MFCC(n_mfcc=13), (13,)), (ZeroCrossingRate(), ()), (SpectralCentroid(), ())]:
            inputs = keras.Input((samples,))
            symbolic = layer(inputs)
            frames = 1 + samples // layer.hop_length
            assert tuple(symbolic.shape) == (None, frames, *extra)
            assert np.asarray(layer(np.zeros((2, samples), np.float32))).shape == (2, frames, *extra)


def test_saved_model_round_trip_keeps_outputs_and_small_config(tmp_path):
    inputs = keras.Input((8000,))
    features = LogMelSpectrogram(n_fft=512, hop_length=160, n_mels=64, stft="matmul", normalize="per_example",
                                 mel_projection="banded")(inputs)
    model = keras.Model(inputs, [features, MFCC(n_mfcc=13, lifter=22)(inputs), SpectralCentroid()(inputs),
                                 ZeroCrossingRate()(inputs), RMSEnergy(pad_mode="reflect")(inputs)])
    clip = tone(seconds=0.5)[None]
    path = tmp_path / "frontend.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    for before, after in zip(model(clip), restored(clip)):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    for layer in model.layers[1:]:
        assert len(json.dumps(layer.get_config())) < 1500


@pytest.mark.parametrize("options", [dict(mel_scale="mel"), dict(norm="l2"), dict(stft="dft"), dict(pad_mode="wrap"),
                                     dict(normalize="global"), dict(ref="mean"), dict(n_fft=256, win_length=400),
                                     dict(mel_projection="sparse")])
def test_bad_options_raise_one_line_errors(options):
    with pytest.raises(CoughclfError) as error:
        LogMelSpectrogram(**options)
    assert "\n" not in str(error.value)


def tflite_builtin_ops(export_dir):
    """Convert a SavedModel with builtin ops only; return its interpreter and operator names."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    converter = tf.lite.TFLiteConverter.from_saved_model(str(export_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    interpreter = Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    from coughclf.export import flatbuffer_operators

    return interpreter, set(flatbuffer_operators(flatbuffer))


@pytest.mark.parametrize("stft, mel_projection", [("matmul", "dense"), ("fft", "dense"), ("fft", "banded")])
def test_tflite_export_uses_builtin_ops_only_and_matches(tmp_path, stft, mel_projection):
    inputs = keras.Input((16000,), batch_size=1)
    layer = LogMelSpectrogram(n_fft=512, hop_length=160, n_mels=64, stft=stft, mel_projection=mel_projection)
    model = keras.Model(inputs, layer(inputs))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    interpreter, op_names = tflite_builtin_ops(tmp_path / "saved")
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in op_names)
    if stft == "matmul":
        assert "RFFT2D" not in op_names and "FULLY_CONNECTED" in op_names
    if mel_projection == "banded":
        assert {"GATHER", "SUM"} <= op_names and "FULLY_CONNECTED" not in op_names
    clip = tone(seconds=1.0, frequency=700.0)[None]
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip)
    interpreter.invoke()
    exported = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(exported, np.asarray(model(clip)), atol=1e-3)


def test_front_end_computes_in_float32_under_mixed_precision():
    clip = tone(seconds=0.5)[None]
    expected = run_layer(LogMelSpectrogram(), clip[0])
    keras.config.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input((clip.shape[1],))
        model = keras.Model(inputs, LogMelSpectrogram()(inputs))
        features = np.asarray(model(clip))
    finally:
        keras.config.set_dtype_policy("float32")
    assert features.dtype == np.float32
    np.testing.assert_allclose(features[0], expected, atol=1e-3)
