"""Synthetic cough-like recordings: the embedded default dataset of ``coughclf demo``.

Two classes that differ in ways a spectrogram model can learn and a person can hear:

* ``dry``: one or two short, bright bursts (flat spectral tilt, little low-frequency energy);
* ``wet``: two to four bursts with a dark tilt and a gurgling low-frequency "wetness" tail.

Every clip comes from one of a few synthetic *subjects* whose vocal-tract resonances are
shifted, so group-aware splits have something to respect. Everything is seeded.
"""

from pathlib import Path

import numpy as np

CLASSES = ("dry", "wet")
_CLASS_STYLE = {
    # bursts (min, max), spectral tilt exponent (1/f^alpha), wetness level
    "dry": ((1, 2), 0.3, 0.0),
    "wet": ((2, 4), 1.4, 0.6),
}


def _shaped_noise(rng, samples, alpha, sample_rate):
    """White noise whose power spectrum falls as 1/f^alpha above 100 Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1.0 / sample_rate)
    spectrum /= np.maximum(freqs, 100.0) ** (alpha / 2)
    noise = np.fft.irfft(spectrum, samples)
    return noise / (np.abs(noise).max() + 1e-9)


def _resonate(signal, sample_rate, centres_hz, bandwidth_hz=250.0):
    """Emphasise formant-like bands by summing band-passed copies in the frequency domain."""
    spectrum = np.fft.rfft(signal)
    freqs = np.fft.rfftfreq(signal.size, 1.0 / sample_rate)
    gain = 0.3 + sum(np.exp(-0.5 * ((freqs - c) / bandwidth_hz) ** 2) for c in centres_hz)
    return np.fft.irfft(spectrum * gain, signal.size)


def cough_clip(label, *, subject=0, seconds=1.5, sample_rate=16000, seed=0):
    """One synthetic cough of class ``label`` ("dry" or "wet") as float32 in [-1, 1]."""
    if label not in _CLASS_STYLE:
        raise ValueError(f"label must be one of {CLASSES}, not {label!r}")
    (min_bursts, max_bursts), alpha, wetness = _CLASS_STYLE[label]
    rng = np.random.default_rng([seed, subject, CLASSES.index(label)])
    samples = int(seconds * sample_rate)
    clip = np.zeros(samples)
    formants = np.array([500.0, 1500.0, 2700.0]) * (1.0 + 0.08 * subject)
    onset = rng.uniform(0.05, 0.25) * seconds
    for _ in range(rng.integers(min_bursts, max_bursts + 1)):
        length = int(rng.uniform(0.12, 0.25) * sample_rate)
        start = int(onset * sample_rate)
        if start + length > samples:
            break
        t = np.arange(length) / sample_rate
        envelope = (1 - np.exp(-t / 0.008)) * np.exp(-t / rng.uniform(0.04, 0.09))
        burst = _resonate(_shaped_noise(rng, length, alpha, sample_rate), sample_rate, formants)
        if wetness:
            rumble = _shaped_noise(rng, length, 2.5, sample_rate)
            rumble *= 1 + np.sin(2 * np.pi * rng.uniform(18, 30) * t)
            burst = burst / (np.abs(burst).max() + 1e-9) + wetness * rumble
        clip[start:start + length] += rng.uniform(0.5, 0.9) * envelope * burst / (np.abs(burst).max() + 1e-9)
        onset += length / sample_rate + rng.uniform(0.05, 0.2)
    clip += 0.003 * rng.standard_normal(samples)
    return (0.9 * clip / np.abs(clip).max()).astype(np.float32)


def write_dataset(root, *, clips_per_class=60, subjects=6, seconds=1.5, sample_rate=16000, seed=0):
    """Write a folder-per-class dataset ``root/{dry,wet}/s{subject}_{n:03d}.wav``.

    The layout is the one the ``folder`` dataset reads, with the subject as group
    (``group_pattern`` ``^(s\\d+)_``). Returns the list of written paths.
    """
    import soundfile

    root = Path(root)
    paths = []
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(clips_per_class):
            subject = index % subjects
            path = root / label / f"s{subject}_{index:03d}.wav"
            audio = cough_clip(label, subject=subject, seconds=seconds, sample_rate=sample_rate,
                               seed=seed * 100_003 + index)
            soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")
            paths.append(path)
    return paths
