"""Decoding any audio file into mono float32 at one sample rate, whole or streamed in blocks.

soundfile (libsndfile) reads wav, flac, ogg and mp3; everything else (webm,
m4a, ...) and anything libsndfile refuses goes through ffmpeg, which decodes to a
float WAV stream on stdout. :func:`stream_audio` yields a file as blocks of a few
seconds (resampled with a streaming soxr resampler, the same numbers as resampling
the whole file at once), so a two-hour recording never sits in memory;
:func:`load_audio` joins the blocks for clips that fit.

Every way a file can be unusable — missing, empty, truncated, undecodable, silent,
shorter than :data:`MIN_SECONDS` — raises :class:`AudioDecodeError` with a reason
short enough for ``skipped.csv``, so a dataset run can note it and go on.
"""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from contextlib import contextmanager
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
# Shorter than one 10 ms analysis frame: nothing a model can use (a 1-sample file is a broken export).
MIN_SECONDS = 0.01
MISSING_REASON = "file not found"
RESAMPLE_QUALITY = "HQ"
BLOCK_SECONDS = 10.0
FFMPEG_INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg)"
_FFMPEG_PREFIX = re.compile(r"^\[[^\]]*\]\s*")
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_STDERR_LOCK = threading.Lock()


class AudioStream:
    """A file decoded block by block: iterate for float32 mono blocks at ``sample_rate``.

    ``expected_samples`` is the length the blocks will add up to when the container declares
    it (soundfile formats), else None. ``peak`` is the largest absolute sample seen so far
    (above 1.0: float audio beyond full scale). The usability checks of the module docstring
    run as the blocks go by and at the end, so a consumer learns of a truncated or silent file
    by an :class:`AudioDecodeError` from the iteration.
    """

    def __init__(self, path, sample_rate=16000, block_seconds=BLOCK_SECONDS):
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.block_seconds = block_seconds
        self.peak = 0.0
        self.expected_samples = None
        try:
            size = self.path.stat().st_size
        except OSError:
            if self.path.is_symlink():
                raise AudioDecodeError(self.path, f"{MISSING_REASON} (broken symbolic link to "
                                                  f"{os.readlink(self.path)})") from None
            raise AudioDecodeError(self.path, MISSING_REASON) from None
        if self.path.is_dir():
            raise AudioDecodeError(self.path, "is a folder, not an audio file")
        if size == 0:
            raise AudioDecodeError(self.path, "empty file (0 bytes)")
        self._soundfile_error = None
        self._declared = None
        if self.path.suffix.lower() not in FFMPEG_SUFFIXES:
            try:
                with quiet_native_stderr():
                    self._declared = soundfile.info(os.fsencode(self.path))
            except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
                self._soundfile_error = error
        if self._declared is not None and self._declared.frames > 0:
            self.expected_samples = int(round(self._declared.frames * self.sample_rate
                                              / self._declared.samplerate))

    def __iter__(self):
        source = (_SoundfileSource(self.path) if self._declared is not None
                  else _FfmpegSource(self.path, self._soundfile_error))
        resampler = None
        source_samples = 0
        try:
            for block in source.blocks(self.block_seconds):
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if not np.all(np.isfinite(mono)):
                    raise AudioDecodeError(self.path, "corrupt audio (non-finite samples)")
                source_samples += len(mono)
                if mono.size:
                    self.peak = max(self.peak, float(np.max(np.abs(mono))))
                if source.rate != self.sample_rate:
                    resampler = resampler or soxr.ResampleStream(source.rate, self.sample_rate, 1, dtype="float32",
                                                                 quality=RESAMPLE_QUALITY)
                    mono = resampler.resample_chunk(mono)
                if mono.size:
                    yield np.ascontiguousarray(mono, dtype=np.float32)
            source.check_complete(source_samples)
            self._check_usable(source_samples, source.rate)
            if resampler is not None:
                tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if tail.size:
                    yield np.ascontiguousarray(tail, dtype=np.float32)
        finally:
            source.close()

    def _check_usable(self, source_samples, rate):
        if source_samples == 0:
            raise AudioDecodeError(self.path, "no audio samples (header only or truncated)")
        if source_samples < MIN_SECONDS * rate:
            raise AudioDecodeError(self.path, f"too short ({source_samples} sample{'s' * (source_samples != 1)}, "
                                              f"under the {MIN_SECONDS * 1000:.0f} ms minimum)")
        if self.peak < SILENCE_PEAK:
            raise AudioDecodeError(self.path, f"silent (peak amplitude {self.peak:.1e})")


def stream_audio(path, sample_rate=16000, block_seconds=BLOCK_SECONDS):
    """An :class:`AudioStream` of ``path``: missing and empty files fail here, the rest while iterating."""
    return AudioStream(path, sample_rate, block_seconds)


def load_audio(path, sample_rate=16000, stream=None):
    """Decode ``path`` into a 1-D float32 array at ``sample_rate`` Hz.

    Channels are averaged to mono; other rates are resampled with soxr (high
    quality). Raises :class:`AudioDecodeError` for a missing, empty, truncated,
    undecodable, too short or silent file. Pass an :class:`AudioStream` as ``stream`` to
    read its ``peak`` afterwards.
    """
    stream = stream or AudioStream(path, sample_rate)
    blocks = list(stream)
    return np.concatenate(blocks) if len(blocks) != 1 else blocks[0]


def printable(path):
    """``path`` as text that any UTF-8 file or terminal takes: the bytes of a file name that are not
    UTF-8 are written as ``\\xNN``."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def to_pcm16(audio):
    """Float audio in [-1, 1) -> int16 PCM (clipped, rounded), the cache's storage format."""
    scaled = np.round(np.asarray(audio, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


@contextmanager
def quiet_native_stderr():
    """Hold file descriptor 2 on /dev/null: libmpg123 prints notes ("Illegal Audio-MPEG-Header",
    "Trying to resync") from C straight to it, and every real problem is raised anyway."""
    with _STDERR_LOCK:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


class _SoundfileSource:
    """libsndfile's blocks of one file at its own rate, ``[frames, channels]`` float32."""

    def __init__(self, path):
        self.path = path
        try:
            with quiet_native_stderr():
                self.handle = soundfile.SoundFile(os.fsencode(path))
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            raise AudioDecodeError(path, f"undecodable or corrupt: {error}") from None
        self.rate, self.frames = self.handle.samplerate, self.handle.frames
        if path.suffix.lower() == ".wav":
            # libsndfile silently shortens a cut-off WAV to what is there; its header still tells.
            self.frames = _declared_wav_frames(path) or self.frames

    def blocks(self, block_seconds):
        block_frames = max(1, int(block_seconds * self.rate))
        while True:
            try:
                with quiet_native_stderr():
                    block = self.handle.read(block_frames, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
                raise AudioDecodeError(self.path, f"undecodable or corrupt: {error}") from None
            if not len(block):
                return
            yield block

    def check_complete(self, frames_read):
        if frames_read < self.frames:
            raise AudioDecodeError(self.path, f"truncated: header declares {self.frames} samples, "
                                              f"file holds {frames_read}")

    def close(self):
        self.handle.close()


class _FfmpegSource:
    """ffmpeg decoding to a float32 WAV stream on a pipe, read block by block."""

    def __init__(self, path, soundfile_error=None):
        self.path = path
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            cause = f"soundfile cannot read it ({soundfile_error})" if soundfile_error else \
                f"{path.suffix or 'this'} files need ffmpeg"
            raise AudioDecodeError(path, f"{cause} and the program 'ffmpeg' is not installed: "
                                         f"{FFMPEG_INSTALL_HINT}")
        # A file, not a pipe, for ffmpeg's messages: a full stderr pipe would stall the decoder.
        self.messages = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "wav", "-acodec", "pcm_f32le", "-"],
            stdout=subprocess.PIPE, stderr=self.messages)
        self.channels, self.rate = self._read_header()

    def _read_header(self):
        """(channels, rate) from the WAV header; leaves the pipe at the first sample."""
        head = b""
        while True:
            more = self.process.stdout.read(4096)
            head += more
            channels = rate = None
            for chunk_id, start, size in _riff_chunks(head):
                if chunk_id == b"fmt " and start + 16 <= len(head):
                    fmt_tag, channels, rate = struct.unpack_from("<HHI", head, start)
                    bits = struct.unpack_from("<H", head, start + 14)[0]
                    if fmt_tag not in (_WAVE_FORMAT_FLOAT, _WAVE_FORMAT_EXTENSIBLE) or bits != 32:
                        channels = None
                        break
                elif chunk_id == b"data" and channels:
                    self._pending = head[start:]
                    return channels, rate
            if not more:
                self._fail()
                raise AudioDecodeError(self.path, "ffmpeg produced no audio stream")

    def blocks(self, block_seconds):
        frame_bytes = 4 * self.channels
        block_bytes = max(1, int(block_seconds * self.rate)) * frame_bytes
        pending = self._pending
        while True:
            more = self.process.stdout.read(block_bytes)
            pending += more
            usable = len(pending) - len(pending) % frame_bytes
            if usable:
                yield np.frombuffer(pending[:usable], dtype="<f4").reshape(-1, self.channels).copy()
                pending = pending[usable:]
            if not more:
                return

    def check_complete(self, frames_read):
        self._fail()

    def _fail(self):
        """Raise ffmpeg's own first message when it reported a problem."""
        returncode = self.process.wait()
        self.messages.seek(0)
        errors = self.messages.read().decode(errors="replace").strip().splitlines()
        if returncode != 0 or errors:
            # ffmpeg's first message names the cause; later ones repeat it for the container.
            detail = _FFMPEG_PREFIX.sub("", errors[0]).replace(str(self.path), "").strip(": ") if errors else \
                f"ffmpeg exit status {returncode}"
            raise AudioDecodeError(self.path, f"undecodable or corrupt: {detail}")

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.messages.close()


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
