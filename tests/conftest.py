"""Shared test helpers: small audio that tests make themselves, and the shared real data."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def tone(seconds=0.5, sample_rate=16000, frequency=440.0, amplitude=0.5, seed=0, noise=0.01):
    """A sine tone with a little noise: a deterministic, non-silent test signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = amplitude * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(t.size)
    return signal.astype(np.float32)


def write_audio(path, signal, sample_rate=16000, **soundfile_kwargs):
    """Write ``signal`` to ``path`` (format from the suffix), creating folders."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), signal, sample_rate, **soundfile_kwargs)
    return path


@pytest.fixture
def shared_data():
    """The real recordings in ../shared/data; tests that need them skip when absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
