"""Decoding any audio file into mono float32 at one sample rate, whole or streamed in blocks.

soundfile (libsndfile) reads wav, flac, ogg and mp3; everything else (webm,
m4a, ...) and anything libsndfile refuses goes through ffmpeg, which decodes to a
float WAV stream on stdout. :func:`stream_audio` yields a file as blocks of a few
seconds (resampled with a streaming soxr resampler, the same numbers as resampling
the whole file at once), so a two-hour recording never sits in memory;
:func:`load_audio` joins the blocks for clips that fit.

Every way a file can be unusable — missing, not a regular file (a pipe, a device), empty,
truncated, undecodable, silent, shorter than :data:`MIN_SECONDS` — raises
:class:`AudioDecodeError` with a reason short enough for ``skipped.csv``, so a dataset run
can note it and go on.

Limits follow from the data and are checked before decoding (:func:`check_header`): a header
whose sample rate or channel count no recording has, or whose duration is beyond
``max_file_seconds`` (default :data:`DEFAULT_MAX_FILE_SECONDS`), is refused from the header
alone, and a stream that goes on past that duration anyway (a header that lies, ffmpeg
formats, whose headers are not read) is stopped there. So decoding one file holds at most
``max_file_seconds`` of audio at the target rate, whatever its header claims, and a block
at most :data:`MAX_BLOCK_SAMPLES` samples whatever its channel count. Only regular files
are opened (:func:`open_regular_file`): a named pipe would block and ``/dev/zero`` never ends.
"""

import collections
import os
import re
import shutil
import stat
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
# What a recording's header can plausibly declare; beyond these it is damaged or hostile (a 32 KB WAV whose
# header says 1 Hz would be resampled to 16,000 s of audio).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000
MAX_CHANNELS = 256
# The longest recording decoded unless told otherwise. prepare holds a whole clip while decoding and
# converting it, about 10 bytes per sample at the target rate: some 1.7 GB for 3 hours at 16 kHz.
DEFAULT_MAX_FILE_SECONDS = 3 * 3600.0
# The most samples (frames x channels) of one decoded block: 64 MB of float32, whatever the channel count.
MAX_BLOCK_SAMPLES = 1 << 24
_FFMPEG_PREFIX = re.compile(r"^\[[^\]]*\]\s*")
# The file kinds that are not audio files, as the reason names them.
_SPECIAL_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISSOCK, "a socket"))
# Opening a named pipe without it returns at once instead of waiting for a writer (POSIX; Windows has none).
_NO_WAITING = getattr(os, "O_NONBLOCK", 0)
# libsndfile's text for a file it cannot parse, written for the pipes it was not given.
_LIBSNDFILE_NOT_REGULAR = "File does not exist or is not a regular file (possibly a pipe?)."
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_STDERR_LOCK = threading.Lock()
# The fields of a WAV header that decoding depends on (data_bytes: None when there is no data chunk).
_WavHeader = collections.namedtuple("_WavHeader", "channels rate block_align data_bytes")


class AudioStream:
    """A file decoded block by block: iterate for float32 mono blocks at ``sample_rate``.

    ``expected_samples`` is the length the blocks will add up to when the container declares
    it (soundfile formats), else None. ``peak`` is the largest absolute sample seen so far
    (above 1.0: float audio beyond full scale). The usability checks of the module docstring
    run as the blocks go by and at the end, so a consumer learns of a truncated or silent file
    by an :class:`AudioDecodeError` from the iteration.
    """

    def __init__(self, path, sample_rate=16000, block_seconds=BLOCK_SECONDS,
                 max_file_seconds=DEFAULT_MAX_FILE_SECONDS):
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.block_seconds = block_seconds
        self.max_file_seconds = float(max_file_seconds)
        self.peak = 0.0
        self.expected_samples = None
        with open_regular_file(self.path) as (_, size):
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
                wav = _wav_header(self.path)
                if wav is not None:  # an absurd WAV header: no decoder can help, ffmpeg included
                    check_header(self.path, wav.rate, wav.channels)
        if self._declared is not None:
            check_header(self.path, self._declared.samplerate, self._declared.channels,
                         max(self._declared.frames, 0), self.max_file_seconds)
            if self._declared.frames > 0:
                self.expected_samples = int(round(self._declared.frames * self.sample_rate
                                                  / self._declared.samplerate))

    def __iter__(self):
        source = (_SoundfileSource(self.path) if self._declared is not None
                  else _FfmpegSource(self.path, self._soundfile_error))
        resampler = None
        source_samples = 0
        try:
            check_header(self.path, source.rate, source.channels)
            most_samples = self.max_file_seconds * source.rate
            for block in source.blocks(self.block_seconds):
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if not np.all(np.isfinite(mono)):
                    raise AudioDecodeError(self.path, "corrupt audio (non-finite samples)")
                source_samples += len(mono)
                if source_samples > most_samples:  # its header said less, or nothing (ffmpeg formats)
                    raise AudioDecodeError(self.path, _too_long(self.max_file_seconds))
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


def stream_audio(path, sample_rate=16000, block_seconds=BLOCK_SECONDS,
                 max_file_seconds=DEFAULT_MAX_FILE_SECONDS):
    """An :class:`AudioStream` of ``path``: missing, special and empty files and implausible or too long
    headers fail here, the rest while iterating."""
    return AudioStream(path, sample_rate, block_seconds, max_file_seconds)


def load_audio(path, sample_rate=16000, stream=None, max_file_seconds=DEFAULT_MAX_FILE_SECONDS):
    """Decode ``path`` into a 1-D float32 array at ``sample_rate`` Hz.

    Channels are averaged to mono; other rates are resampled with soxr (high
    quality). Raises :class:`AudioDecodeError` for a missing, special, empty, truncated,
    undecodable, too short, too long or silent file, and for an implausible header. Pass an
    :class:`AudioStream` as ``stream`` to read its ``peak`` afterwards.
    """
    stream = stream or AudioStream(path, sample_rate, max_file_seconds=max_file_seconds)
    blocks = list(stream)
    return np.concatenate(blocks) if len(blocks) != 1 else blocks[0]


def check_header(path, rate, channels, frames=None, max_file_seconds=None):
    """Raise :class:`AudioDecodeError` unless a header's sample ``rate`` and ``channels`` are a recording's
    and its ``frames`` (when given) last at most ``max_file_seconds``: one place decides what is plausible."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(path, f"implausible header: sample rate {rate} Hz (recordings have "
                                     f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioDecodeError(path, f"implausible header: {channels} channels (recordings have 1 to "
                                     f"{MAX_CHANNELS})")
    if frames is not None and frames > max_file_seconds * rate:
        raise AudioDecodeError(path, _too_long(max_file_seconds, declared=frames / rate))


def _too_long(max_file_seconds, declared=None):
    length = f"its header declares {_duration(declared)}, " if declared is not None else ""
    return (f"too long: {length}more than the {_duration(max_file_seconds)} allowed (max_file_seconds: "
            "raise it to keep such files)")


def _duration(seconds):
    text = f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.3g} s"
    return text + (f" ({seconds / 3600:.1f} h)" if seconds >= 3600 else "")


@contextmanager
def open_regular_file(path):
    """``(binary file, its size when opened)`` for the regular file ``path``; read at most that size
    (a /proc file says 0 bytes and never ends).

    A folder, named pipe, device or socket raises :class:`AudioDecodeError` naming what it is
    (through a symbolic link too), as do a missing file and a broken link. The file is opened
    without blocking and checked on the open descriptor: opening a pipe would wait for a writer.
    """
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | _NO_WAITING)
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioDecodeError(path, f"{MISSING_REASON} (broken symbolic link to {os.readlink(path)})") from None
        raise AudioDecodeError(path, MISSING_REASON) from None
    except OSError as error:
        raise AudioDecodeError(path, f"cannot be opened ({error.strerror})") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        kind = next((name for is_kind, name in _SPECIAL_FILES if is_kind(status.st_mode)), "not a regular file")
        link = f" (a symbolic link to {os.readlink(path)})" if path.is_symlink() else ""
        raise AudioDecodeError(path, f"{kind}{link}, not an audio file")
    with os.fdopen(descriptor, "rb") as handle:
        yield handle, status.st_size


def printable(path):
    """``path`` as text that any UTF-8 file or terminal takes: the bytes of a file name that are not
    UTF-8 are written as ``\\xNN``."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def to_pcm16(audio):
    """Float audio in [-1, 1) -> int16 PCM (clipped, rounded), the cache's storage format."""
    audio = np.asarray(audio)
    # Scaling by a power of two is exact in the audio's own precision: one scaled copy, rounded and clipped in place.
    scaled = np.multiply(audio, 32768.0, dtype=np.result_type(audio.dtype, np.float32))
    np.round(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(np.int16)


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
            raise AudioDecodeError(path, f"undecodable or corrupt: {libsndfile_reason(error)}") from None
        self.rate, self.channels, self.frames = self.handle.samplerate, self.handle.channels, self.handle.frames
        if path.suffix.lower() == ".wav":
            # libsndfile silently shortens a cut-off WAV to what is there; its header still tells.
            self.frames = _declared_wav_frames(path) or self.frames

    def blocks(self, block_seconds):
        block_frames = _block_frames(block_seconds, self.rate, self.channels)
        while True:
            try:
                with quiet_native_stderr():
                    block = self.handle.read(block_frames, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
                raise AudioDecodeError(self.path, f"undecodable or corrupt: {libsndfile_reason(error)}") from None
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
            cause = f"soundfile cannot read it ({libsndfile_reason(soundfile_error)})" if soundfile_error else \
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
        block_bytes = _block_frames(block_seconds, self.rate, self.channels) * frame_bytes
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


def _block_frames(block_seconds, rate, channels):
    """Frames per decoded block: ``block_seconds`` of audio, fewer when many channels would pass
    :data:`MAX_BLOCK_SAMPLES`."""
    return max(1, min(int(block_seconds * rate), MAX_BLOCK_SAMPLES // max(channels, 1)))


def libsndfile_reason(error):
    """libsndfile's message about a file it refused, without the path (the reason's row names it) and
    without its guess that a regular file is a pipe (only regular files reach it here)."""
    text = getattr(error, "error_string", None) or str(error)
    if text.strip() == _LIBSNDFILE_NOT_REGULAR:
        return "damaged, or not the format its name says"
    return text.strip() or type(error).__name__


def _wav_header(path):
    """The :class:`_WavHeader` of a RIFF/WAVE file (None for any other file), read from its first 64 KB."""
    try:
        with open_regular_file(path) as (handle, size):
            head = handle.read(min(size, 1 << 16))
    except AudioDecodeError:
        return None
    channels = rate = block_align = None
    for chunk_id, start, chunk_bytes in _riff_chunks(head):
        if chunk_id == b"fmt " and start + 14 <= len(head):
            _, channels, rate, _, block_align = struct.unpack_from("<HHIIH", head, start)
        elif chunk_id == b"data" and channels is not None:
            return _WavHeader(channels, rate, block_align, chunk_bytes)
    return None if channels is None else _WavHeader(channels, rate, block_align, None)


def _declared_wav_frames(path):
    """Frames the WAV header's data chunk promises, or None when the header cannot be read."""
    header = _wav_header(path)
    if header is None or not header.block_align or header.data_bytes is None:
        return None
    # Streaming writers leave 0 or 0xFFFFFFFF there: no promise to check.
    return header.data_bytes // header.block_align if header.data_bytes not in (0, 0xFFFFFFFF) else None
