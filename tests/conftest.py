"""Shared test helpers: small audio that tests make themselves, and the shared real data."""

import contextlib
import os
import signal
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


def handmade_wav(path, rate, channels=1, seconds=None, data_bytes=32000, declared_data_bytes=None):
    """A 16-bit PCM WAV written byte by byte, so that its header can claim anything: any ``rate`` and
    ``channels`` (block sizes wrap to the header's fields), and ``declared_data_bytes`` in place of the
    ``data_bytes`` of noise that follow it (``seconds``: that much audio instead)."""
    import struct

    if seconds is not None:
        data_bytes = int(seconds * rate) * 2 * channels
    data = (np.random.default_rng(0).standard_normal(data_bytes // 2) * 3000).astype("<i2").tobytes()
    block_align = (2 * channels) & 0xFFFF
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block_align) & 0xFFFFFFFF, block_align, 16)
    declared = len(data) if declared_data_bytes is None else declared_data_bytes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", declared) + data)
    return path


@contextlib.contextmanager
def deadline(seconds):
    """Fail the body with TimeoutError after ``seconds`` instead of hanging (a blocking open of a pipe, an
    endless read of /dev/zero): SIGALRM interrupts them in the main thread."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def shared_data():
    """The real recordings in ../shared/data; tests that need them skip when absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
