"""Augmentation layers: each one's measured effect, identity outside training, seeding, config."""

import json
import os

import keras
import numpy as np
import pytest
import scipy.signal

from conftest import deadline, tone, write_audio
from coughclf.errors import CoughclfError
from coughclf.layers import (
    BackgroundNoise,
    ColouredNoise,
    FrequencyMasking,
    PitchShift,
    PolarityInversion,
    RandomGain,
    SpecAugment,
    TimeInversion,
    TimeMasking,
    TimeShift,
    TimeWarp,
    build_augmentation,
    load_noise_bank,
)

SAMPLE_RATE = 16000
RNG = np.random.default_rng(0)
NOISE_BANK = RNG.standard_normal((3, 12000)).astype(np.float32)


def tones(batch=8, seconds=0.5):
    return np.stack([tone(seconds, frequency=300.0 + 150 * i, seed=i) for i in range(batch)])


def spectrograms(batch=8, frames=60, mels=40):
    return RNG.uniform(-60.0, 0.0, (batch, frames, mels)).astype(np.float32)


def waveform_layers():
    return [
        PitchShift(2.0, seed=1),
        ColouredNoise(seed=1),
        BackgroundNoise(NOISE_BANK, seed=1),
        TimeInversion(seed=1),
        PolarityInversion(seed=1),
        RandomGain(seed=1),
        TimeShift(max_seconds=0.05, seed=1),
        TimeShift(max_fraction=0.3, fill="zero", seed=1),
    ]


def spectrogram_layers():
    return [TimeWarp(4, seed=1), FrequencyMasking(2, 8, seed=1), TimeMasking(2, 10, seed=1), SpecAugment(seed=1)]


def run(layer, inputs, training=True):
    return np.asarray(layer(inputs, training=training))


def snr_db(clean, noisy):
    noise = noisy - clean
    return 10 * np.log10(np.mean(clean**2, axis=1) / np.mean(noise**2, axis=1))


def peak_hz(signal):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return np.argmax(spectrum) * SAMPLE_RATE / signal.size


ALL_LAYERS = [pytest.param(layer, tones, id=f"{type(layer).__name__}{index}")
              for index, layer in enumerate(waveform_layers())]
ALL_LAYERS += [pytest.param(layer, spectrograms, id=type(layer).__name__) for layer in spectrogram_layers()]


@pytest.mark.parametrize("layer, inputs", ALL_LAYERS)
def test_identity_unless_training_and_seeded(layer, inputs):
    batch = inputs()
    for training in (False, None):
        np.testing.assert_array_equal(run(layer, batch, training), batch)
    twin = type(layer).from_config(layer.get_config())
    if isinstance(layer, BackgroundNoise):
        twin.build(batch.shape)
        twin.noise_bank.assign(NOISE_BANK)
    first, again = run(layer, batch), run(twin, batch)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - batch).max() > 0


def test_different_seeds_give_different_augmentations():
    batch = tones()
    assert np.abs(run(PitchShift(2.0, seed=1), batch) - run(PitchShift(2.0, seed=2), batch)).max() > 0.01


@pytest.mark.parametrize("semitones", [2.0, -3.0, 0.5])
def test_pitch_shift_moves_the_spectral_peak_by_the_semitone_ratio(semitones):
    clip = tone(seconds=1.0, frequency=1000.0, noise=0.0)[None]
    shifted = np.asarray(PitchShift(4.0).transform(clip, {"semitones": np.array([semitones], np.float32)}))[0]
    assert shifted.shape == clip[0].shape
    assert abs(peak_hz(shifted) - 1000.0 * 2 ** (semitones / 12)) <= 2.0


def test_pitch_shift_in_training_stays_within_the_semitone_range():
    batch = np.stack([tone(seconds=1.0, frequency=1000.0, noise=0.0)] * 16)
    ratios = np.array([peak_hz(row) for row in run(PitchShift(2.0, seed=3), batch)]) / 1000.0
    semitones = 12 * np.log2(ratios)
    assert np.all(np.abs(semitones) <= 2.0 + 0.05)
    assert semitones.std() > 0.3


def test_coloured_noise_snr_within_range():
    batch = tones(batch=32)
    noisy = run(ColouredNoise(snr_db=(5.0, 15.0), seed=4), batch)
    measured = snr_db(batch, noisy)
    assert np.all((measured >= 5.0 - 1e-2) & (measured <= 15.0 + 1e-2))
    assert measured.max() - measured.min() > 3.0


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_power_spectrum_falls_as_one_over_f_alpha(colour, slope):
    clean = tone(seconds=4.0, frequency=50.0, noise=0.0)[None]
    layer = ColouredNoise(colours=[colour], snr_db=(0.0, 0.0), seed=5)
    noise = run(layer, clean)[0] - clean[0]
    frequencies, density = scipy.signal.welch(noise, fs=SAMPLE_RATE, nperseg=4096)
    band = (frequencies >= 100) & (frequencies <= 6000)
    fitted = np.polyfit(np.log10(frequencies[band]), np.log10(density[band]), 1)[0]
    assert abs(fitted - slope) < 0.15


def test_coloured_noise_probability_zero_and_silence_stay_clean():
    batch = tones(batch=4)
    np.testing.assert_array_equal(run(ColouredNoise(probability=0.0, seed=1), batch), batch)
    silence = np.zeros((2, 4000), np.float32)
    np.testing.assert_array_equal(run(ColouredNoise(seed=1), silence), silence)


def test_background_noise_mixes_a_bank_excerpt_at_the_drawn_snr():
    batch = tones(batch=16)
    layer = BackgroundNoise(NOISE_BANK, snr_db=(0.0, 10.0), seed=6)
    noisy = run(layer, batch)
    measured = snr_db(batch, noisy)
    assert np.all((measured >= -1e-2) & (measured <= 10.0 + 1e-2))
    samples = batch.shape[1]
    for added in noisy - batch:
        best = 0.0
        for row in NOISE_BANK:
            window_norms = np.sqrt(np.convolve(row**2, np.ones(samples), mode="valid"))
            correlation = scipy.signal.correlate(row, added, mode="valid", method="fft")
            best = max(best, (correlation / (window_norms * np.linalg.norm(added))).max())
        assert best > 0.9999


def test_background_noise_loops_a_bank_shorter_than_the_clip():
    bank = np.arange(10, dtype=np.float32)[None] + 1.0
    layer = BackgroundNoise(bank)
    layer.build((1, 25))
    clip = np.ones((1, 25), np.float32)
    parameters = {"row": np.array([0]), "start": np.array([0]), "snr_db": np.array([0.0], np.float32),
                  "apply": np.array([True])}
    added = np.asarray(layer.transform(clip, parameters))[0] - 1.0
    expected = np.resize(bank[0], 25)
    np.testing.assert_allclose(added / added[0], expected / expected[0], rtol=1e-5)


def test_load_noise_bank_cuts_resamples_and_loops(tmp_path):
    write_audio(tmp_path / "noise" / "long.wav", 0.1 * RNG.standard_normal(int(2.5 * 8000)), sample_rate=8000)
    write_audio(tmp_path / "noise" / "short.wav", 0.1 * RNG.standard_normal(6400), sample_rate=16000)
    (tmp_path / "noise" / "README.md").write_text("not audio")
    bank = load_noise_bank([tmp_path / "noise"], sample_rate=16000, seconds=1.0)
    assert bank.shape == (3, 16000) and bank.dtype == np.float32
    np.testing.assert_array_equal(bank[2, :6400], bank[2, 6400:12800])
    with pytest.raises(CoughclfError, match="missing.wav"):
        load_noise_bank([tmp_path / "missing.wav"])
    with pytest.raises(CoughclfError):
        load_noise_bank([tmp_path / "empty_folder_that_does_not_exist"])
    os.mkfifo(tmp_path / "noise" / "fifo.wav")  # decoded as every recording is: a pipe is named, not opened
    with deadline(20), pytest.raises(CoughclfError, match=r"fifo.wav: cannot use noise file \(a named pipe"):
        load_noise_bank([tmp_path / "noise"])


def test_time_and_polarity_inversion():
    batch = tones(batch=64, seconds=0.1)
    np.testing.assert_array_equal(run(TimeInversion(probability=1.0, seed=1), batch), batch[:, ::-1])
    np.testing.assert_array_equal(run(PolarityInversion(probability=1.0, seed=1), batch), -batch)
    for layer, changed in [(TimeInversion(seed=2), lambda x: x[:, ::-1]), (PolarityInversion(seed=2), lambda x: -x)]:
        out = run(layer, batch)
        flipped = np.all(out == changed(batch), axis=1)
        assert np.all(flipped | np.all(out == batch, axis=1))
        assert 15 <= flipped.sum() <= 49


def test_random_gain_within_range():
    batch = tones(batch=32)
    out = run(RandomGain(-9.0, 3.0, seed=7), batch)
    gains = out / batch
    np.testing.assert_allclose(gains, gains[:, :1] * np.ones_like(gains), rtol=1e-5)
    decibels = 20 * np.log10(gains[:, 0])
    assert np.all((decibels >= -9.0 - 1e-4) & (decibels <= 3.0 + 1e-4))
    assert decibels.max() - decibels.min() > 4.0


@pytest.mark.parametrize("fill", ["circular", "zero"])
def test_time_shift_moves_each_example_by_at_most_the_limit(fill):
    batch = RNG.standard_normal((16, 1000)).astype(np.float32)
    largest = 80
    out = run(TimeShift(max_seconds=largest / SAMPLE_RATE, fill=fill, seed=8), batch)

    def shift(row, samples):
        moved = np.roll(row, samples)
        if fill == "zero" and samples > 0:
            moved[:samples] = 0
        elif fill == "zero" and samples < 0:
            moved[samples:] = 0
        return moved

    shifts = []
    for row, shifted in zip(batch, out):
        matches = [s for s in range(-largest, largest + 1) if np.array_equal(shift(row, s), shifted)]
        assert len(matches) == 1
        shifts.extend(matches)
    assert len(set(shifts)) > 4


def test_time_shift_by_fraction_scales_with_length():
    batch = RNG.standard_normal((32, 400)).astype(np.float32)
    layer = TimeShift(max_fraction=0.1, seed=9)
    shifts = np.asarray(layer.sample_parameters(batch)["shift"])
    assert np.abs(shifts).max() <= 40 and np.abs(shifts).max() >= 20
    with pytest.raises(CoughclfError):
        TimeShift(max_seconds=0.1, max_fraction=0.1)


def test_time_warp_is_monotone_keeps_the_ends_and_moves_at_most_max_warp():
    frames, mels, warp = 50, 3, 6.0
    ramp = np.broadcast_to(np.arange(frames, dtype=np.float32)[None, :, None], (32, frames, mels)).copy()
    out = run(TimeWarp(warp, seed=10), ramp)
    source = out[:, :, 0]
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    assert np.all(np.diff(source, axis=1) >= -1e-4)
    np.testing.assert_allclose(source[:, [0, -1]], [[0, frames - 1]] * 32, atol=1e-4)
    displacement = np.abs(source - np.arange(frames)).max(axis=1)
    assert displacement.max() <= warp + 1e-3 and displacement.max() > 1.0


def masked_runs(flags):
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.mark.parametrize("layer_type, axis", [(FrequencyMasking, 2), (TimeMasking, 1)])
def test_masks_have_allowed_counts_and_widths(layer_type, axis):
    num_masks, max_width = 2, 7
    features = spectrograms(batch=64)
    layer = layer_type(num_masks, max_width, mask_value=1.0, seed=11)
    out = run(layer, features)
    masked = out == 1.0
    across = 3 - axis
    assert np.all(masked.all(axis=across) == masked.any(axis=across))
    total = 0
    for flags in masked.any(axis=across):
        runs = masked_runs(flags)
        assert len(runs) <= num_masks and runs.sum() <= num_masks * max_width
        total += runs.sum()
    assert total > 64 * max_width * 0.5
    parameters = layer.sample_parameters(features)
    width, start = np.asarray(parameters["width"]), np.asarray(parameters["start"])
    assert width.min() >= 0 and width.max() <= max_width
    assert np.all(start + width <= features.shape[axis])


def test_mean_mask_value_is_the_example_mean():
    features = spectrograms(batch=4)
    out = run(FrequencyMasking(1, 40, mask_value="mean", seed=12), features)
    for before, after in zip(features, out):
        changed = after != before
        np.testing.assert_allclose(after[changed], before.mean(), rtol=1e-5)


def test_spec_augment_combines_warp_and_masks_by_config():
    features = spectrograms()
    layer = SpecAugment(time_warp=0, freq_masks=1, freq_width=5, time_masks=0, mask_value=-1000.0, seed=13)
    out = run(layer, features)
    untouched = out != -1000.0
    np.testing.assert_array_equal(out[untouched], features[untouched])
    assert [type(part) for part in layer.parts] == [FrequencyMasking]
    assert len(SpecAugment().parts) == 3


def test_round_trip_in_a_saved_model(tmp_path):
    inputs = keras.Input((6000,))
    x = inputs
    for layer in waveform_layers():
        x = layer(x)
    spec = keras.layers.Reshape((60, 100))(x)
    for layer in spectrogram_layers():
        spec = layer(spec)
    model = keras.Model(inputs, spec)
    path = tmp_path / "augment.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    batch = tones(batch=3, seconds=6000 / SAMPLE_RATE)
    np.testing.assert_array_equal(np.asarray(restored(batch)), np.asarray(model(batch)))
    bank_layer = next(layer for layer in restored.layers if isinstance(layer, BackgroundNoise))
    np.testing.assert_array_equal(np.asarray(bank_layer.noise_bank), NOISE_BANK)
    assert len(json.dumps(bank_layer.get_config())) < 1000


def test_build_augmentation_from_config(tmp_path):
    write_audio(tmp_path / "bg.wav", 0.1 * RNG.standard_normal(16000))
    config = {
        "seed": 5,
        "pitch_shift": {"max_semitones": 3},
        "coloured_noise": {"colours": ["pink"], "snr_db": [5, 10]},
        "background_noise": {"paths": [str(tmp_path / "bg.wav")], "seconds": 0.5, "snr_db": [0, 5]},
        "random_gain": None,
        "spec_augment": {"time_warp": 3, "freq_masks": 1},
        "time_shift": {"max_fraction": 0.2},
    }
    waveform, spec = build_augmentation(config)
    assert [type(layer) for layer in waveform] == [PitchShift, ColouredNoise, BackgroundNoise, TimeShift]
    assert [type(layer) for layer in spec] == [SpecAugment]
    assert waveform[0].max_semitones == 3.0 and waveform[0].seed == 5
    assert waveform[2].bank_shape == (2, 8000)
    again, _ = build_augmentation(config)
    batch = tones(batch=2)
    np.testing.assert_array_equal(run(waveform[0], batch), run(again[0], batch))
    with pytest.raises(CoughclfError, match="pitch_shfit"):
        build_augmentation({"pitch_shfit": {}})
    with pytest.raises(CoughclfError, match="pitch_shift"):
        build_augmentation({"pitch_shift": {"semitones": 2}})
    with pytest.raises(CoughclfError):
        build_augmentation({"coloured_noise": {"colours": ["purple"]}})
