"""Decoding any audio file into mono float32 at one sample rate.

soundfile (libsndfile) reads wav, flac, ogg and mp3; everything else (webm,
m4a, ...) and anything libsndfile refuses goes through ffmpeg, which decodes to a
float WAV stream on stdout. Every way a file can be unusable — missing, empty,
truncated, undecodable, silent — raises :class:`AudioDecodeError` with a reason
short enough for ``skipped.csv``, so a dataset run can note it and go on.
"""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile
import soxr

from coughclf.errors import AudioDecodeError

# Containers libsndfile cannot open: go straight to ffmpeg.
FFMPEG_SUFFIXES = frozenset({".webm", ".m4a", ".mp4", ".aac", ".opus", ".wma", ".amr", ".3gp", ".mkv"})
# The suffixes of the audio files a folder is searched for (datasets, background noise): the formats
# the corpora come in, which load_audio reads.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".webm")
# A clip whose loudest sample stays below this (-80 dBFS) holds no usable sound.
SILENCE_PEAK = 1e-4
RESAMPLE_QUALITY = "HQ"
FFMPEG_INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)"
_FFMPEG_PREFIX = re.compile(r"^\[[^\]]*\]\s*")
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def load_audio(path, sample_rate=16000):
    """Decode ``path`` into a 1-D float32 array at ``sample_rate`` Hz.

    Channels are averaged to mono; other rates are resampled with soxr (high
    quality). Raises :class:`AudioDecodeError` for a missing, empty, truncated,
    undecodable or silent file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise AudioDecodeError(path, "file not found") from None
    if size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        audio, rate = _decode_with_ffmpeg(path)
    else:
        try:
            audio, rate = _decode_with_soundfile(path)
        except AudioDecodeError:
            raise
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            audio, rate = _decode_with_ffmpeg(path, soundfile_error=error)
    mono = audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]
    _check_usable(path, mono)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(mono, dtype=np.float32)


def to_pcm16(audio):
    """Float audio in [-1, 1) -> int16 PCM (clipped, rounded), the cache's storage format."""
    scaled = np.round(np.asarray(audio, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def _check_usable(path, mono):
    if mono.size == 0:
        raise AudioDecodeError(path, "no audio samples (header only or truncated)")
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError(path, "corrupt audio (non-finite samples)")
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        raise AudioDecodeError(path, f"silent (peak amplitude {peak:.1e})")


def _decode_with_soundfile(path):
    with soundfile.SoundFile(str(path)) as handle:
        rate, declared_frames = handle.samplerate, handle.frames
        audio = handle.read(dtype="float32", always_2d=True)
    if path.suffix.lower() == ".wav":
        # libsndfile silently shortens a cut-off WAV to what is there; its header still tells.
        declared_frames = _declared_wav_frames(path) or declared_frames
    if len(audio) < declared_frames:
        raise AudioDecodeError(path, f"truncated: header declares {declared_frames} samples, "
                                     f"file holds {len(audio)}")
    return audio, rate


def _decode_with_ffmpeg(path, soundfile_error=None):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        cause = f"soundfile cannot read it ({soundfile_error})" if soundfile_error else \
            f"{path.suffix or 'this'} files need ffmpeg"
        raise AudioDecodeError(path, f"{cause} and the program 'ffmpeg' is not installed: {FFMPEG_INSTALL_HINT}")
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
        capture_output=True, check=False)
    errors = result.stderr.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or errors:
        # ffmpeg's first message names the cause; later ones repeat it for the container.
        detail = _FFMPEG_PREFIX.sub("", errors[0]).replace(str(path), "").strip(": ") if errors else \
            f"ffmpeg exit status {result.returncode}"
        raise AudioDecodeError(path, f"undecodable or corrupt: {detail}")
    return _parse_float_wav(path, result.stdout)


def _riff_chunks(header_bytes):
    """(chunk id, payload offset, declared payload size) for each chunk of a RIFF/WAVE byte string."""
    if len(header_bytes) < 12 or header_bytes[:4] != b"RIFF" or header_bytes[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(header_bytes):
        chunk_id, size = struct.unpack_from("<4sI", header_bytes, offset)
        yield chunk_id, offset + 8, size
        offset += 8 + size + (size & 1)


def _declared_wav_frames(path):
    """Frames the WAV header's data chunk promises, or None when the header cannot be read."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    block_align = None
    for chunk_id, start, size in _riff_chunks(head):
        if chunk_id == b"fmt " and start + 14 <= len(head):
            block_align = struct.unpack_from("<H", head, start + 12)[0]
        elif chunk_id == b"data" and block_align:
            # Streaming writers leave 0 or 0xFFFFFFFF there: no promise to check.
            return size // block_align if size not in (0, 0xFFFFFFFF) else None
    return None


def _parse_float_wav(path, data):
    """Samples of the float32 WAV stream ffmpeg wrote to a pipe (its sizes there are placeholders)."""
    channels = rate = None
    for chunk_id, start, size in _riff_chunks(data):
        if chunk_id == b"fmt ":
            fmt_tag, channels, rate = struct.unpack_from("<HHI", data, start)
            bits = struct.unpack_from("<H", data, start + 14)[0]
            if fmt_tag not in (_WAVE_FORMAT_FLOAT, _WAVE_FORMAT_EXTENSIBLE) or bits != 32:
                break
        elif chunk_id == b"data" and channels:
            payload = data[start:]
            usable = len(payload) - len(payload) % (4 * channels)
            samples = np.frombuffer(payload[:usable], dtype="<f4").reshape(-1, channels)
            return samples.astype(np.float32), rate
    raise AudioDecodeError(path, "ffmpeg produced no audio stream")
