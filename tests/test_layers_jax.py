"""The front-end and augmentation layers give the same numbers under KERAS_BACKEND=jax.

Run as a script (``python tests/test_layers_jax.py OUT.npz``) it computes every
layer's outputs on fixed inputs with whatever backend it runs under; the test
runs it under JAX in a subprocess and compares with TensorFlow in-process.
Deterministic layers, and the augmentations' ``transform`` with fixed
parameters, must agree within 1e-5 of each output's largest magnitude. dB
outputs are compared as power (relative to each clip's peak): a DFT done as a
float32 matrix product carries ~1e-7 of the peak power as round-off into bins
80 dB down, which dB magnifies to ~1e-3 dB, on either backend. The random
draws differ between backends, so their JAX outputs are checked for the
properties they must have instead.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TOLERANCE = 1e-5
SNR_RANGE = (5.0, 15.0)
GAIN_RANGE = (-6.0, 6.0)
NUM_MASKS, MAX_WIDTH = 2, 6
DECIBEL_OUTPUTS = ("fixed/log_mel_fft", "fixed/log_mel_matmul", "fixed/log_mel_banded")


def fixed_inputs():
    """Waveforms [3, 8000] (tone, noise, chirp), spectrograms [3, 40, 32], a noise bank and white noise."""
    rng = np.random.default_rng(42)
    time = np.arange(8000) / 16000
    waves = np.stack([
        0.5 * np.sin(2 * np.pi * 440 * time) + 0.02 * rng.standard_normal(time.size),
        0.1 * rng.standard_normal(time.size),
        0.3 * np.sin(2 * np.pi * (200 + 3000 * time) * time),
    ]).astype(np.float32)
    return {
        "waves": waves,
        "spectrograms": rng.uniform(-80.0, 0.0, (3, 40, 32)).astype(np.float32),
        "bank": rng.standard_normal((2, 10000)).astype(np.float32),
        "white_noise": rng.standard_normal(waves.shape).astype(np.float32),
    }


def fixed_parameters(inputs):
    """Per-layer augmentation parameters, as ``sample_parameters`` would draw them."""
    def floats(*values):
        return np.array(values, np.float32)

    def ints(*values):
        return np.array(values, np.int32)

    apply = np.array([True, False, True])
    return {
        "pitch_shift": {"semitones": floats(1.5, -2.0, 0.3)},
        "coloured_noise": {"white_noise": inputs["white_noise"], "exponent": floats(0.0, 1.0, 2.0),
                           "snr_db": floats(5.0, 10.0, 20.0), "apply": np.array([True, True, False])},
        "background_noise": {"row": ints(0, 1, 1), "start": ints(0, 500, 2000), "snr_db": floats(0.0, 3.0, 9.0),
                             "apply": apply},
        "time_inversion": {"apply": apply},
        "polarity_inversion": {"apply": apply},
        "random_gain": {"gain_db": floats(-3.0, 0.0, 4.5)},
        "time_shift_circular": {"shift": ints(100, -50, 0)},
        "time_shift_zero": {"shift": ints(100, -50, 0)},
        "time_warp": {"anchor": floats(10.0, 20.0, 30.5), "warp": floats(3.0, -4.5, 0.0)},
        "frequency_masking": {"start": ints(0, 3, 10, 10, 25, 31).reshape(3, 2),
                              "width": ints(4, 0, 5, 2, 6, 1).reshape(3, 2)},
        "time_masking": {"start": ints(1, 30, 5, 6, 0, 39).reshape(3, 2),
                         "width": ints(3, 6, 2, 2, 0, 1).reshape(3, 2)},
    }


def build_layers(inputs, seed=7):
    """name -> (layer, input key) for every front-end and augmentation layer."""
    from coughclf import layers

    return {
        "log_mel_fft": (layers.LogMelSpectrogram(n_fft=512, hop_length=160, n_mels=64), "waves"),
        "log_mel_matmul": (layers.LogMelSpectrogram(n_fft=512, hop_length=160, n_mels=64, stft="matmul"), "waves"),
        "log_mel_banded": (layers.LogMelSpectrogram(n_fft=512, hop_length=160, n_mels=64, mel_projection="banded"),
                           "waves"),
        "log_mel_htk_reflect": (layers.LogMelSpectrogram(n_fft=1024, hop_length=256, win_length=800, mel_scale="htk",
                                                         norm=None, pad_mode="reflect", power=1.0,
                                                         normalize="per_example"), "waves"),
        "mfcc": (layers.MFCC(n_mfcc=13, lifter=22, n_fft=512, hop_length=160, n_mels=40), "waves"),
        "zcr": (layers.ZeroCrossingRate(), "waves"),
        "rms": (layers.RMSEnergy(), "waves"),
        "centroid": (layers.SpectralCentroid(), "waves"),
        "pitch_shift": (layers.PitchShift(2.0, seed=seed), "waves"),
        "coloured_noise": (layers.ColouredNoise(snr_db=SNR_RANGE, seed=seed), "waves"),
        "background_noise": (layers.BackgroundNoise(inputs["bank"], snr_db=SNR_RANGE, seed=seed), "waves"),
        "time_inversion": (layers.TimeInversion(seed=seed), "waves"),
        "polarity_inversion": (layers.PolarityInversion(seed=seed), "waves"),
        "random_gain": (layers.RandomGain(*GAIN_RANGE, seed=seed), "waves"),
        "time_shift_circular": (layers.TimeShift(max_fraction=0.1, seed=seed), "waves"),
        "time_shift_zero": (layers.TimeShift(max_seconds=0.01, fill="zero", seed=seed), "waves"),
        "time_warp": (layers.TimeWarp(5, seed=seed), "spectrograms"),
        "frequency_masking": (layers.FrequencyMasking(NUM_MASKS, MAX_WIDTH, seed=seed), "spectrograms"),
        "time_masking": (layers.TimeMasking(NUM_MASKS, MAX_WIDTH, mask_value=1.0, seed=seed), "spectrograms"),
        "spec_augment": (layers.SpecAugment(time_warp=3, freq_width=MAX_WIDTH, time_width=MAX_WIDTH, seed=seed),
                         "spectrograms"),
    }


def compute_outputs():
    """Every layer's outputs on the fixed inputs, under the current Keras backend."""
    inputs = fixed_inputs()
    parameters = fixed_parameters(inputs)
    outputs = {}
    first, second = build_layers(inputs), build_layers(inputs)
    for name, (layer, key) in first.items():
        data = inputs[key]
        if not hasattr(layer, "seed"):
            outputs[f"fixed/{name}"] = np.asarray(layer(data))
            continue
        layer.build(data.shape)
        if name in parameters:
            outputs[f"fixed/{name}"] = np.asarray(layer.transform(data, parameters[name]))
        outputs[f"random/{name}"] = np.asarray(layer(data, training=True))
        outputs[f"random_again/{name}"] = np.asarray(second[name][0](data, training=True))
        outputs[f"inference/{name}"] = np.asarray(layer(data, training=False))
    return outputs


def jax_outputs(tmp_path):
    output = tmp_path / "jax_outputs.npz"
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    completed = subprocess.run([sys.executable, __file__, str(output)], env=environment, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "backend=jax" in completed.stdout
    return dict(np.load(output))


def test_layers_agree_between_tensorflow_and_jax(tmp_path):
    import keras
    import pytest

    if keras.backend.backend() == "jax":
        pytest.skip("this process already runs JAX: nothing to compare against")
    on_jax = jax_outputs(tmp_path)
    on_tensorflow = compute_outputs()
    assert sorted(on_jax) == sorted(on_tensorflow)
    inputs = fixed_inputs()
    for key, expected in on_tensorflow.items():
        if key.startswith("fixed/"):
            ours = on_jax[key]
            if key in DECIBEL_OUTPUTS:
                ours, expected = 10.0 ** (ours / 10.0), 10.0 ** (expected / 10.0)
            assert np.max(np.abs(ours - expected)) <= TOLERANCE * np.max(np.abs(expected)), key
        elif key.startswith("inference/"):
            np.testing.assert_array_equal(on_jax[key], expected, err_msg=key)
            assert any(np.array_equal(expected, data) for data in inputs.values()), key
    check_random_draws(on_jax, inputs)


def check_random_draws(outputs, inputs):
    """The JAX random augmentations are seeded and have the effects they promise."""
    waves, spectrograms = inputs["waves"], inputs["spectrograms"]
    for key in outputs:
        if key.startswith("random_again/"):
            np.testing.assert_array_equal(outputs[key], outputs[key.replace("random_again/", "random/")], err_msg=key)
    for name in ("coloured_noise", "background_noise"):
        noise = outputs[f"random/{name}"] - waves
        snr = 10 * np.log10(np.mean(waves**2, axis=1) / np.mean(noise**2, axis=1))
        assert np.all((snr >= SNR_RANGE[0] - 0.01) & (snr <= SNR_RANGE[1] + 0.01)), (name, snr)
    gain_db = 20 * np.log10(np.linalg.norm(outputs["random/random_gain"], axis=1) / np.linalg.norm(waves, axis=1))
    assert np.all((gain_db >= GAIN_RANGE[0] - 1e-3) & (gain_db <= GAIN_RANGE[1] + 1e-3))
    for row, out in zip(waves, outputs["random/polarity_inversion"]):
        assert np.array_equal(out, row) or np.array_equal(out, -row)
    for row, out in zip(waves, outputs["random/time_inversion"]):
        assert np.array_equal(out, row) or np.array_equal(out, row[::-1])
    masked_frames = (outputs["random/time_masking"] == 1.0).all(axis=2).sum(axis=1)
    assert np.all(masked_frames <= NUM_MASKS * MAX_WIDTH)
    changed_bands = (outputs["random/frequency_masking"] != spectrograms).any(axis=1).sum(axis=1)
    assert np.all(changed_bands <= NUM_MASKS * MAX_WIDTH)
    assert outputs["random/spec_augment"].shape == spectrograms.shape


if __name__ == "__main__":
    import keras

    print(f"backend={keras.backend.backend()}")
    np.savez(Path(sys.argv[1]), **compute_outputs())
