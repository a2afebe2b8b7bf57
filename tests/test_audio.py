"""Decoding: every container, any channel count and rate, and every way a file can be unusable."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from conftest import deadline, handmade_wav, tone, write_audio

from coughclf import audio
from coughclf.audio import load_audio, to_pcm16
from coughclf.errors import AudioDecodeError

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def dominant_frequency(signal, sample_rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.fft.rfftfreq(len(signal), 1 / sample_rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_soundfile_formats_decode_to_the_written_tone(tmp_path, suffix):
    if suffix.upper() not in soundfile.available_formats():
        pytest.skip(f"this libsndfile cannot write {suffix}")
    written = tone(seconds=1.0, frequency=440.0)
    decoded = load_audio(write_audio(tmp_path / f"clip.{suffix}", written), 16000)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    # Lossy codecs pad a few frames; the content must be the same tone at the same level.
    assert abs(len(decoded) - len(written)) <= 0.1 * len(written)
    assert dominant_frequency(decoded, 16000) == pytest.approx(440.0, abs=2.0)
    assert np.sqrt(np.mean(decoded ** 2)) == pytest.approx(np.sqrt(np.mean(written ** 2)), rel=0.1)
    if suffix in ("wav", "flac"):
        np.testing.assert_allclose(decoded, written, atol=1 / 32768)


@needs_ffmpeg
def test_webm_goes_through_ffmpeg(tmp_path):
    source = write_audio(tmp_path / "clip.wav", tone(seconds=1.0, sample_rate=48000, frequency=660.0), 48000)
    webm = tmp_path / "clip.webm"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-c:a", "libopus", str(webm)], check=True)
    decoded = load_audio(webm, 16000)
    assert abs(len(decoded) - 16000) < 800
    assert dominant_frequency(decoded, 16000) == pytest.approx(660.0, abs=2.0)


def test_missing_ffmpeg_is_named_with_how_to_install(tmp_path, monkeypatch):
    webm = tmp_path / "clip.webm"
    webm.write_bytes(b"\x1aE\xdf\xa3" + bytes(100))
    monkeypatch.setattr(audio.shutil, "which", lambda program: None)
    with pytest.raises(AudioDecodeError) as raised:
        load_audio(webm)
    assert "ffmpeg" in raised.value.reason and "apt-get install ffmpeg" in raised.value.reason


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(frequency=440.0, seed=1), 0.5 * tone(frequency=1000.0, seed=2)
    path = write_audio(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_resampling_keeps_length_and_pitch(tmp_path, rate):
    path = write_audio(tmp_path / f"tone{rate}.wav", tone(seconds=1.0, sample_rate=rate, frequency=1000.0, noise=0),
                       rate, subtype="FLOAT")
    decoded = load_audio(path, 16000)
    assert len(decoded) == 16000
    assert dominant_frequency(decoded, 16000) == pytest.approx(1000.0, abs=1.0)
    # Away from the edges the resampled signal is the same sine sampled at 16 kHz.
    ideal = tone(seconds=1.0, sample_rate=16000, frequency=1000.0, noise=0)
    np.testing.assert_allclose(decoded[800:-800], ideal[800:-800], atol=2e-3)


def _write_bytes(path, content):
    path.write_bytes(content)
    return path


def _wav_bytes(tmp_path):
    return write_audio(tmp_path / "whole.wav", tone(seconds=1.0), 16000, subtype="PCM_16").read_bytes()


@pytest.mark.parametrize("case, expected", [
    ("empty", "empty file"),
    ("missing", "not found"),
    ("header_only", "truncated"),
    ("cut_in_half", "truncated"),
    ("silent", "silent"),
    ("garbage", "corrupt"),
])
def test_unusable_files_raise_a_short_reason(tmp_path, case, expected):
    if case == "garbage" and shutil.which("ffmpeg") is None:
        pytest.skip("what libsndfile refuses goes on to ffmpeg, which is not installed")
    whole = _wav_bytes(tmp_path)
    path = {
        "empty": lambda: _write_bytes(tmp_path / "empty.wav", b""),
        "missing": lambda: tmp_path / "absent.wav",
        "header_only": lambda: _write_bytes(tmp_path / "header.wav", whole[:44]),
        "cut_in_half": lambda: _write_bytes(tmp_path / "half.wav", whole[:len(whole) // 2]),
        "silent": lambda: write_audio(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000),
        "garbage": lambda: _write_bytes(tmp_path / "garbage.flac", np.random.default_rng(0).bytes(4000)),
    }[case]()
    with pytest.raises(AudioDecodeError) as raised:
        load_audio(path)
    assert expected in raised.value.reason
    assert raised.value.path == str(path)


def test_to_pcm16_rounds_and_clips():
    pcm = to_pcm16(np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 1.4 / 32768], np.float32))
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 1]


def test_a_clip_shorter_than_the_minimum_is_refused(tmp_path):
    path = write_audio(tmp_path / "one.wav", np.array([0.5], np.float32), 16000)
    with pytest.raises(AudioDecodeError, match="too short"):
        load_audio(path)
    # 10 ms is enough
    load_audio(write_audio(tmp_path / "ten.wav", tone(seconds=0.01), 16000))


def test_libmpg123_notes_do_not_reach_stderr(tmp_path, capfd):
    signal = tone(seconds=2.0, sample_rate=16000)
    damaged = bytearray(write_audio(tmp_path / "clip.mp3", signal, 16000).read_bytes())
    damaged[len(damaged) // 2:len(damaged) // 2 + 400] = np.random.default_rng(0).bytes(400)
    (tmp_path / "damaged.mp3").write_bytes(bytes(damaged))
    capfd.readouterr()
    with pytest.raises(AudioDecodeError, match="truncated"):  # the resync lost samples the header promised
        load_audio(tmp_path / "damaged.mp3")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("suffix, rate", [("wav", 44100), ("flac", 16000), ("webm", 48000)])
def test_streamed_blocks_equal_the_whole_file(tmp_path, suffix, rate):
    from coughclf.audio import stream_audio

    if suffix == "webm" and shutil.which("ffmpeg") is None:
        pytest.skip("webm needs ffmpeg")
    signal = tone(seconds=3.3, sample_rate=rate, frequency=500.0)
    path = tmp_path / f"clip.{suffix}"
    if suffix == "webm":
        wav = write_audio(tmp_path / "source.wav", signal, rate)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libopus", str(path)],
                       check=True)
    else:
        write_audio(path, signal, rate)
    stream = stream_audio(path, 16000, block_seconds=0.25)
    blocks = list(stream)
    assert len(blocks) >= 13 and max(len(block) for block in blocks) <= 2 * 0.25 * 16000
    whole = load_audio(path, 16000)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    if stream.expected_samples is not None:
        assert stream.expected_samples == len(whole)
    assert 0.4 < stream.peak < 0.6


@needs_ffmpeg
def test_decoded_audio_is_writable_whichever_decoder_read_it(tmp_path):
    wav = write_audio(tmp_path / "clip.wav", tone(seconds=0.5, sample_rate=16000), 16000)
    webm = tmp_path / "clip.webm"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libopus", str(webm)], check=True)
    for path in (wav, webm):
        decoded = load_audio(path, 48000 if path == webm else 16000)
        decoded[0] = 0.0  # callers may work in place


# --- issue 25: headers that claim too much, files that are not files ---------------------------------------

@pytest.mark.parametrize("rate, channels, expected", [
    (1, 1, "sample rate 1 Hz"),                   # 32 KB that would resample to 16,000 s
    (999, 1, "sample rate 999 Hz"),
    (4294967295, 1, "sample rate 4294967295 Hz"),  # libsndfile refuses it: no ffmpeg hint either
    (16000, 32767, "32767 channels"),               # likewise
    (16000, 300, "300 channels"),
])
def test_an_implausible_header_is_refused_before_decoding(tmp_path, monkeypatch, rate, channels, expected):
    path = handmade_wav(tmp_path / "claims.wav", rate, channels)
    monkeypatch.setattr(audio, "_SoundfileSource", None)  # constructing a decoder would fail the test
    with pytest.raises(AudioDecodeError) as raised:
        audio.stream_audio(path)
    assert raised.value.reason.startswith(f"implausible header: {expected}")
    assert "ffmpeg" not in raised.value.reason


def test_the_plausible_limits_are_accepted(tmp_path):
    low = load_audio(handmade_wav(tmp_path / "low.wav", audio.MIN_SAMPLE_RATE, seconds=0.5), 1000)
    assert len(low) == 500
    wide = load_audio(handmade_wav(tmp_path / "wide.wav", 16000, audio.MAX_CHANNELS, seconds=0.01), 16000)
    assert len(wide) == 160


def test_a_data_chunk_that_claims_more_than_the_file_holds_is_truncated_at_once(tmp_path):
    path = handmade_wav(tmp_path / "liar.wav", 8000, declared_data_bytes=0x7FFFFF00)  # 37 hours at 8 kHz
    stream = audio.stream_audio(path, 16000)
    assert stream.expected_samples == 32000  # what the file holds, not what the chunk claims
    with pytest.raises(AudioDecodeError, match=r"truncated: header declares 1073741696 samples, file holds 16000"):
        list(stream)


def test_a_file_longer_than_the_maximum_is_refused_by_its_header_and_by_its_length(tmp_path):
    path = handmade_wav(tmp_path / "long.wav", 8000, seconds=30.0)
    with pytest.raises(AudioDecodeError, match=r"too long: its header declares 30 s, more than the 10 s allowed "
                                               r"\(max_file_seconds"):
        audio.stream_audio(path, max_file_seconds=10)
    # A header that says less than the stream holds (or nothing, as ffmpeg's formats) is stopped while decoding,
    # before more than the maximum is in memory.
    stream = audio.stream_audio(path, 16000, block_seconds=1.0, max_file_seconds=60)
    stream.max_file_seconds = 10
    decoded = 0
    with pytest.raises(AudioDecodeError, match=r"too long: more than the 10 s allowed"):
        for block in stream:
            decoded += len(block)
    assert decoded <= 10 * 16000
    assert len(load_audio(path, 8000, max_file_seconds=30)) == 30 * 8000


def test_blocks_of_many_channels_stay_under_the_sample_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "MAX_BLOCK_SAMPLES", 64 * 100)
    path = write_audio(tmp_path / "wide.wav", np.tile(tone(seconds=0.5)[:, None], (1, 64)), 16000)
    stream = audio.stream_audio(path, 16000, block_seconds=1.0)
    blocks = list(stream)
    assert max(len(block) for block in blocks) == 100 and sum(map(len, blocks)) == 8000
    np.testing.assert_allclose(np.concatenate(blocks), tone(seconds=0.5), atol=1e-4)


def test_pipes_devices_and_folders_are_named_and_never_read(tmp_path):
    os.mkfifo(tmp_path / "fifo.wav")
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    (tmp_path / "folder.wav").mkdir()
    expected = {"fifo.wav": "a named pipe (FIFO), not an audio file",
                "zero.wav": "a character device (a symbolic link to /dev/zero), not an audio file",
                "folder.wav": "a folder, not an audio file"}
    with deadline(20):  # opening the pipe or reading /dev/zero would block or never end
        for name, reason in expected.items():
            with pytest.raises(AudioDecodeError) as raised:
                load_audio(tmp_path / name)
            assert raised.value.reason == reason


def test_reading_stops_at_the_size_the_file_had_when_opened(tmp_path):
    path = tmp_path / "growing.bin"
    path.write_bytes(b"x" * 10)
    with audio.open_regular_file(path) as (handle, size):
        path.write_bytes(b"x" * 20)
        assert size == 10
    with audio.open_regular_file("/proc/self/status") as (handle, size):
        assert size == 0  # a /proc file says 0 bytes (and /proc/self/mem would never end): nothing is read


def test_libsndfile_s_pipe_guess_is_not_quoted_for_a_regular_file(tmp_path, monkeypatch):
    path = tmp_path / "damaged.mp3"
    path.write_bytes(b"ID3" + np.random.default_rng(0).bytes(500))
    monkeypatch.setattr(audio.shutil, "which", lambda program: None)
    with pytest.raises(AudioDecodeError) as raised:
        load_audio(path)
    assert "pipe" not in raised.value.reason and "damaged, or not the format its name says" in raised.value.reason
    assert "apt-get install ffmpeg" in raised.value.reason  # ffmpeg may read what libsndfile cannot
