"""KaldiFbank equals torchaudio.compliance.kaldi.fbank as the AST recipe calls it, on real clips.

Run as a script (``python tests/test_kaldi_fbank.py OUT.npy``) it computes the layer on fixed
input with whatever Keras backend it runs under; the JAX test runs it in a subprocess.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import tone
from coughclf.audio import load_audio
from coughclf.errors import CoughclfError
from coughclf.layers import KaldiFbank
from coughclf.layers.kaldi import AUDIOSET_MEAN, AUDIOSET_STD, kaldi_samples

# What the AST recipe (and transformers' ASTFeatureExtractor) passes to torchaudio.
AST_RECIPE = {"htk_compat": True, "sample_frequency": 16000, "use_energy": False, "window_type": "hanning",
              "num_mel_bins": 128, "dither": 0.0, "frame_shift": 10}
# Kaldi's log of float32 mel energies: torchaudio's own float32 rounding makes the last digits differ.
TOLERANCE = 1e-3


def torchaudio_fbank(waveform, dtype=np.float32, **options):
    from torch_reference import torch

    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")

    return kaldi.fbank(torch.from_numpy(np.asarray(waveform, dtype)[None]), **{**AST_RECIPE, **options}).numpy()


def real_clips(shared_data):
    """Two clips of each corpus at 16 kHz: FSDD (8 kHz wav, resampled by soxr), covid19_cough mp3, ESC-10 ogg."""
    paths = (sorted((shared_data / "fsdd" / "recordings").glob("*.wav"))[:2]
             + sorted((shared_data / "covid19_cough" / "raw").glob("*.mp3"))[:2]
             + sorted((shared_data / "esc10_dev").glob("*/*.ogg"))[::40][:2])
    assert len(paths) == 6, paths
    return [load_audio(path, 16000) for path in paths]


@pytest.mark.parametrize("stft, mel_projection", [("fft", "dense"), ("matmul", "banded")])
def test_equals_torchaudio_on_real_clips(shared_data, stft, mel_projection):
    layer = KaldiFbank(stft=stft, mel_projection=mel_projection)
    for waveform in real_clips(shared_data):
        # torchaudio's computation carried out exactly (float64): its own float32 result lies up to 7e-4
        # from it on these clips and ours up to 5e-4, in low-energy bins where the log magnifies
        # float32 FFT rounding; so the two float32 results may differ by the sum (1.1e-3 measured).
        reference = torchaudio_fbank(waveform, dtype=np.float64)
        ours = keras.ops.convert_to_numpy(layer(waveform[None]))[0]
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(ours, torchaudio_fbank(waveform), atol=2 * TOLERANCE, rtol=0)


def test_audioset_normalisation_is_the_recipes(shared_data):
    waveform = real_clips(shared_data)[2]
    normalised = keras.ops.convert_to_numpy(KaldiFbank(normalization="audioset")(waveform[None]))[0]
    expected = (torchaudio_fbank(waveform) - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)
    np.testing.assert_allclose(normalised, expected, atol=TOLERANCE / (2 * AUDIOSET_STD), rtol=0)


@pytest.mark.parametrize("options", [{"window_type": "povey"}, {"num_mel_bins": 64, "low_freq": 100.0,
                                                                  "high_freq": -400.0, "frame_length": 32.0}])
def test_other_kaldi_options_match(options):
    waveform = tone(0.7, frequency=900.0) + tone(0.7, frequency=150.0, seed=1)
    layer = KaldiFbank(window=options.get("window_type", "hanning"), n_mels=options.get("num_mel_bins", 128),
                       low_freq=options.get("low_freq", 20.0), high_freq=options.get("high_freq", 0.0),
                       win_length=int(options.get("frame_length", 25.0) * 16))
    ours = keras.ops.convert_to_numpy(layer(waveform[None]))[0]
    np.testing.assert_allclose(ours, torchaudio_fbank(waveform, **options), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("samples", [400, 559, 560, 16000, kaldi_samples(1024)])
def test_frame_count_and_silence_floor(samples):
    layer = KaldiFbank()
    silence = np.zeros((1, samples), np.float32)
    out = keras.ops.convert_to_numpy(layer(silence))
    assert out.shape == (1, *torchaudio_fbank(silence[0]).shape)
    assert layer.compute_output_shape((1, samples)) == out.shape
    np.testing.assert_allclose(out, np.log(np.finfo(np.float32).eps), rtol=1e-6)
    assert kaldi_samples(1024) == 164_080  # the AST AudioSet input: 1,024 frames


def test_bad_options_are_one_line_errors():
    with pytest.raises(CoughclfError, match="window='hann'"):
        KaldiFbank(window="hann")
    with pytest.raises(CoughclfError, match="low_freq=9000.0"):
        KaldiFbank(low_freq=9000.0)


def test_round_trips_in_a_saved_model(tmp_path):
    inputs = keras.Input((4000,))
    model = keras.Model(inputs, KaldiFbank(n_mels=40, normalization="audioset", mel_projection="banded")(inputs))
    model.save(tmp_path / "fbank.keras")
    loaded = keras.saving.load_model(tmp_path / "fbank.keras", safe_mode=True)
    waveform = tone(0.25)[None]
    np.testing.assert_array_equal(loaded.predict(waveform, verbose=0), model.predict(waveform, verbose=0))


def _fixed_waveforms():
    return np.stack([tone(0.3, frequency=440.0), tone(0.3, frequency=3000.0, seed=2, noise=0.1)])


def test_jax_backend_gives_the_same_numbers(tmp_path):
    out = tmp_path / "jax.npy"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, __file__, str(out)], check=True, env=env, timeout=300)
    expected = keras.ops.convert_to_numpy(KaldiFbank(mel_projection="banded")(_fixed_waveforms()))
    np.testing.assert_allclose(np.load(out), expected, atol=TOLERANCE, rtol=0)


if __name__ == "__main__":
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"]
    np.save(sys.argv[1], keras.ops.convert_to_numpy(KaldiFbank(mel_projection="banded")(_fixed_waveforms())))
