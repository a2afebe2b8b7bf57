"""``coughclf predict``: windows, aggregation, .tflite vs .keras, bad files, the speech model."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import deadline, handmade_wav, tone, write_audio
from coughclf.export import export_tflite, flatbuffer_operators
from coughclf.models import build
from coughclf.predict import load_predictor, predict_files, split_windows
from coughclf.text import NUM_CLASSES

LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_short_audio_is_centred_in_one_window():
    windows = split_windows(np.ones(5, np.float32), 10, 5)
    assert windows.tolist() == [[0, 0, 1, 1, 1, 1, 1, 0, 0, 0]]


def test_long_audio_windows_overlap_and_cover_the_end():
    audio = np.arange(25, dtype=np.float32)
    windows = split_windows(audio, 10, 5)
    assert [w[0] for w in windows] == [0, 5, 10, 15]
    assert windows[-1][-1] == 24 and windows.shape == (4, 10)
    assert [w[0] for w in split_windows(audio[:20], 10, 5)] == [0, 5, 10]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained kws_cnn as .keras and .tflite, plus audio files of several kinds."""
    folder = tmp_path_factory.mktemp("predict")
    model = build("kws_cnn", input_mode="waveform")
    keras_path = folder / "kws_cnn.keras"
    model.save(keras_path)
    tflite_path = export_tflite(keras_path, folder / "kws_cnn.tflite", labels=LABELS)
    files = {
        "short": write_audio(folder / "short.wav", tone(0.4, 8000, 300.0), 8000),
        "long": write_audio(folder / "long.flac", tone(2.6, 16000, 1200.0, seed=3)),
        "stereo": write_audio(folder / "stereo.ogg", np.stack([tone(1.0, 22050, 600.0)] * 2, axis=1), 22050),
    }
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return model, keras_path, tflite_path, files, broken


def test_tflite_predictions_average_the_windows(exported):
    from coughclf.audio import load_audio

    model, _, tflite_path, files, _ = exported
    (result,) = predict_files(tflite_path, [files["long"]], hop_seconds=0.5)
    windows = split_windows(load_audio(files["long"]), 16000, 8000)
    assert result["windows"] == len(windows) == 5
    expected = np.asarray(model.predict_on_batch(windows)).mean(axis=0)
    probabilities = np.array([result["probabilities"][label] for label in LABELS])
    assert np.abs(probabilities - expected).max() <= 1e-4
    assert result["label"] == LABELS[int(np.argmax(expected))]
    assert result["probability"] == pytest.approx(float(expected.max()), abs=1e-4)


def test_keras_and_tflite_agree_and_bad_files_do_not_stop_the_others(exported):
    _, keras_path, tflite_path, files, broken = exported
    paths = [files["short"], broken, files["stereo"]]
    from_tflite = predict_files(tflite_path, paths)
    from_keras = predict_files(keras_path, paths)
    assert "error" in from_tflite[1] and "error" in from_keras[1]
    for lite, full in zip(from_tflite[::2], from_keras[::2]):
        assert lite["windows"] == full["windows"] == 1
        lite_p = np.array(list(lite["probabilities"].values()))
        full_p = np.array(list(full["probabilities"].values()))
        assert np.abs(lite_p - full_p).max() <= 1e-4
        assert lite["label"] == LABELS[int(np.argmax(full_p))]
    # a .keras file without a sidecar or run folder names its classes by index
    assert set(from_keras[0]["probabilities"]) == {str(index) for index in range(10)}


def test_predict_command_reports_each_bad_file_and_fails(exported, capsys):
    from coughclf.cli import main

    _, _, tflite_path, files, broken = exported
    missing = broken.with_name("missing.wav")
    assert main(["predict", str(tflite_path), str(files["short"]), str(broken), str(missing)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "broken.wav" in errors[0] and "file not found" in errors[1]
    table = captured.out.strip().splitlines()
    assert table[0].split() == ["file", "label", "probability", "windows"] and "short.wav" in table[1]

    assert main(["predict", str(tflite_path), str(files["long"]), "--json", "--hop", "1.0"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["windows"] == 3 and row["label"] in LABELS

    # A lexicon is for speech models; a missing word list is named.
    assert main(["predict", str(tflite_path), str(files["short"]), "--lexicon", str(missing)]) != 0
    error = capsys.readouterr().err
    assert f"--lexicon {missing}: no such file" in error
    word_list = broken.with_name("words.txt")
    word_list.write_text("yes\nno\n")
    assert main(["predict", str(tflite_path), str(files["short"]), "--lexicon", str(word_list)]) != 0
    assert "applies to speech-recognition models" in capsys.readouterr().err


def test_model_without_sidecar_is_refused(exported, tmp_path):
    from coughclf.errors import CoughclfError

    _, _, tflite_path, _, _ = exported
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(tflite_path.read_bytes())
    with pytest.raises(CoughclfError, match="no metadata file"):
        load_predictor(lonely)


def nearest_centre_frames(starts, outputs, clip):
    """Each window's frames whose centre is nearer its centre than any other's (ties: the later window)."""
    centres = np.asarray(starts) + clip / 2
    kept = []
    for index, (start, output) in enumerate(zip(starts, outputs)):
        positions = start + (np.arange(len(output)) + 0.5) * clip / len(output)
        distances = np.abs(positions[:, None] - centres[None, :])
        owner = len(centres) - 1 - np.argmin(distances[:, ::-1], axis=1)
        kept.append(output[owner == index])
    return np.concatenate(kept)


def test_speech_model_exports_builtin_ops_and_decodes_text(tmp_path):
    from coughclf.ctc import greedy_decode_numpy, lexicon_decode_numpy
    from coughclf.models.deepspeech import inference_model

    model = build("deepspeech2_lite", input_mode="waveform", conv_filters=16, rnn_units=16, rnn_layers=2)
    path = export_tflite(model, tmp_path / "speech.tflite", input_length=8000)
    assert not [name for name in flatbuffer_operators(path.read_bytes()) if name.startswith("CUSTOM")]
    audio = tone(0.8, 16000, 500.0, seed=4)
    audio_file = write_audio(tmp_path / "speech.wav", audio)
    (result,) = predict_files(path, [audio_file])
    windows = split_windows(audio, 8000, 4000)
    assert result["windows"] == len(windows) == 3
    log_probs = np.asarray(inference_model(model, 8000).predict_on_batch(windows))
    tflite_log_probs = np.stack([load_predictor(path)(window) for window in windows])
    assert np.abs(tflite_log_probs - log_probs).max() <= 1e-3
    # The windows overlap by half; each keeps the frames nearest its centre, decoded once.
    stitched = nearest_centre_frames([0, 4000, 4800], log_probs, 8000)
    assert abs(len(stitched) - log_probs.shape[1] * 12800 / 8000) <= 1
    assert result["text"] == greedy_decode_numpy(stitched)
    # With a lexicon only its words come out, decoded over the same frames.
    (lexical,) = predict_files(path, [audio_file], lexicon=["yes", "no"])
    assert lexical["text"] == lexicon_decode_numpy(stitched, ["yes", "no"])
    assert set(lexical["text"].split()) <= {"yes", "no"}


class FakePredictor:
    """A model stand-in: a classifier whose 'probabilities' are fixed functions of the window, or a
    speech model whose frame k of a window spells the character id encoded in the audio's value there."""

    def __init__(self, task="classification", clip_samples=16000, sample_rate=16000, frames=50):
        self.metadata = {"task": task, "clip_samples": clip_samples, "sample_rate": sample_rate,
                         "labels": ["low", "high"]}
        self.frames = frames
        self.calls = 0

    def __call__(self, window):
        self.calls += 1
        if self.metadata["task"] == "classification":
            high = float(np.mean(window > 0.25))
            return np.array([1.0 - high, high], np.float32)
        ids = np.rint(window.reshape(self.frames, -1).mean(axis=1) * 32).astype(int)
        return np.log(np.eye(NUM_CLASSES)[ids] * (1 - 1e-6) + 1e-6 / NUM_CLASSES).astype(np.float32)


@pytest.mark.parametrize("clip, hop, length", [(10, 5, 25), (10, 5, 20), (10, 3, 7), (10, 4, 10), (10, 13, 50),
                                               (8, 8, 8000)])
def test_windows_cut_from_blocks_equal_windows_of_the_whole_clip(clip, hop, length):
    from coughclf.predict import iter_windows, window_count

    audio = np.arange(length, dtype=np.float32)
    whole = split_windows(audio, clip, hop)
    for block in (1, 3, 7, 1000):
        pieces = [audio[start:start + block] for start in range(0, length, block)]
        streamed = list(iter_windows(pieces, clip, hop))
        np.testing.assert_array_equal(np.stack([window for _, window in streamed]), whole)
    assert window_count(length, clip, hop) == len(whole)


def test_a_long_file_streams_through_in_bounded_memory(tmp_path):
    import soundfile
    import tracemalloc

    from coughclf.audio import load_audio, stream_audio
    from coughclf.predict import predict_stream

    path = tmp_path / "long.wav"
    rate, minutes = 16000, 8
    with soundfile.SoundFile(path, "w", rate, 1, "PCM_16") as handle:
        for second in range(minutes * 60):
            handle.write(tone(1.0, rate, 200.0 + second, amplitude=0.2 + 0.5 * (second % 7 == 0), seed=second))
    whole_bytes = minutes * 60 * rate * 4  # the float32 file in memory: 30.7 MB
    predictor = FakePredictor()
    tracemalloc.start()
    result = predict_stream(predictor, stream_audio(path, rate), hop_seconds=0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < whole_bytes / 5, f"peak {peak / 1e6:.1f} MB while predicting a {whole_bytes / 1e6:.1f} MB file"
    windows = split_windows(load_audio(path, rate), rate, rate // 2)
    assert result["windows"] == predictor.calls == len(windows) == 2 * minutes * 60 - 1
    expected = np.mean([predictor(window) for window in windows], axis=0)
    assert result["probabilities"]["high"] == pytest.approx(float(expected[1]), abs=1e-6)


def test_long_speech_is_transcribed_once_across_overlapping_windows():
    from coughclf.ctc import greedy_decode_numpy
    from coughclf.predict import predict_audio
    from coughclf.text import CHARACTERS

    letters = "the quick brown fox jumps over the lazy dog"
    # Each character for 0.1 s then 0.05 s of blank (value 0), 200 samples per frame of 50 per window.
    audio = np.concatenate([np.concatenate([np.full(1600, (CHARACTERS.index(c) + 1) / 32, np.float32),
                                            np.zeros(800, np.float32)]) for c in letters])
    predictor = FakePredictor(task="ctc", clip_samples=10000, frames=50)
    result = predict_audio(predictor, audio)
    assert result["text"] == letters
    assert len(audio) / 16000 > 6 and result["windows"] == predictor.calls > 2
    # the same through whole-file decoding of the frames, as a cross-check of the fake model itself
    assert greedy_decode_numpy(FakePredictor(task="ctc", clip_samples=len(audio) - len(audio) % 200,
                                             frames=len(audio) // 200)(audio[:len(audio) - len(audio) % 200])) \
        == letters


def test_one_bad_file_or_window_count_fails_only_that_file(tmp_path, monkeypatch):
    import coughclf.predict as predict_module

    good = write_audio(tmp_path / "good.wav", tone(2.0, 16000, 300.0))
    huge = write_audio(tmp_path / "huge.wav", tone(6.0, 16000, 300.0))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    monkeypatch.setattr(predict_module, "MAX_WINDOWS", 200, raising=False)
    rows = predict_files(None, [huge, good, broken], hop_seconds=0.02, predictor=FakePredictor())
    assert [("error" in row) for row in rows] == [True, False, True]
    assert "251 windows" in rows[0]["error"] and "--hop 0.03" in rows[0]["error"]
    assert rows[1]["windows"] == 51


def test_sidecar_that_disagrees_with_the_model_or_is_not_json_is_named(exported, tmp_path):
    from coughclf.errors import CoughclfError

    _, _, tflite_path, _, _ = exported
    copy = tmp_path / "model.tflite"
    copy.write_bytes(tflite_path.read_bytes())
    sidecar = json.loads(tflite_path.with_name(tflite_path.name + ".json").read_text())
    sidecar_path = tmp_path / "model.tflite.json"
    sidecar_path.write_text(json.dumps({**sidecar, "labels": ["cough", "speech", "noise"]}))
    with pytest.raises(CoughclfError, match=r"model.tflite.json lists 3 labels but the model outputs 10"):
        load_predictor(copy)
    sidecar_path.write_text(json.dumps({**sidecar, "clip_samples": 0}))
    with pytest.raises(CoughclfError, match="clip_samples must be a positive whole number"):
        load_predictor(copy)
    sidecar_path.write_text("{not json")
    with pytest.raises(CoughclfError, match="model.tflite.json is not valid JSON"):
        load_predictor(copy)
    sidecar_path.write_text(json.dumps(sidecar))
    copy.write_bytes(tflite_path.read_bytes()[:5000])
    with pytest.raises(CoughclfError, match="model.tflite is not a usable TFLite model"):
        load_predictor(copy)


def test_folders_lists_csv_and_timelines(exported, tmp_path, capsys):
    import csv

    from coughclf.cli import main

    _, _, tflite_path, files, broken = exported
    folder = tmp_path / "recordings"
    (folder / "day2").mkdir(parents=True)
    write_audio(folder / "a.wav", tone(0.6, 16000, 500.0))
    write_audio(folder / "day2" / "b.flac", tone(2.5, 16000, 900.0, seed=2))
    (folder / "notes.txt").write_text("not audio")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# recordings of the day\n{files['long']}\n\n{broken}\n")
    out_csv, timelines = tmp_path / "out" / "predictions.csv", tmp_path / "timelines"
    assert main(["predict", str(tflite_path), str(folder), "--files-from", str(listing), "--csv", str(out_csv),
                 "--timeline", str(timelines)]) == 1
    assert "broken.wav" in capsys.readouterr().err
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["file"]).name for row in rows] == ["a.wav", "b.flac", "long.flac", "broken.wav"]
    assert list(rows[0]) == ["file", "label", "probability", "windows", *(f"p_{label}" for label in LABELS), "error"]
    for row in rows[:3]:
        probabilities = [float(row[f"p_{label}"]) for label in LABELS]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4) and not row["error"]
        assert row["label"] == LABELS[int(np.argmax(probabilities))]
    assert rows[3]["error"] and not rows[3]["label"]
    with open(timelines / "b.csv", newline="") as handle:
        timeline = list(csv.DictReader(handle))
    assert len(timeline) == int(rows[1]["windows"]) == 4
    assert [float(row["start_seconds"]) for row in timeline] == [0.0, 0.5, 1.0, 1.5]
    assert (timelines / "b.png").read_bytes()[:4] == b"\x89PNG" and (timelines / "long.png").exists()
    # A folder with no audio in it is that row's error, not "install ffmpeg".
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(tflite_path), str(empty), str(files["short"])]) == 1
    error = capsys.readouterr().err
    assert "no audio files" in error and "ffmpeg" not in error


def test_a_file_name_that_is_not_utf8_is_predicted_and_written_readably(tmp_path):
    import os

    from coughclf.predict import write_csv

    folder = tmp_path / "recordings"
    written = write_audio(folder / "cafe.wav", tone(1.5, 16000, 300.0))
    os.rename(os.fsencode(written), os.fsencode(folder) + b"/caf\xe9.wav")
    (row,) = predict_files(None, [folder], predictor=FakePredictor())
    assert row["file"].endswith("caf\\xe9.wav") and row["windows"] == 2 and "error" not in row
    write_csv([row], tmp_path / "out.csv", ["low", "high"])
    assert "caf\\xe9.wav" in (tmp_path / "out.csv").read_text(encoding="utf-8")


def test_hostile_files_are_refused_each_named_for_what_it_is(tmp_path):
    """Issue 25: a 1 Hz header was cut into 31,999 windows; a pipe, /dev/zero and /proc/self/mem were
    each called "empty file (0 bytes)"."""
    import os

    os.mkfifo(tmp_path / "fifo.wav")
    (tmp_path / "zero.wav").symlink_to("/dev/zero")
    files = [handmade_wav(tmp_path / "one_hertz.wav", 1), tmp_path / "fifo.wav", tmp_path / "zero.wav",
             handmade_wav(tmp_path / "three_seconds.wav", 16000, seconds=3.0),
             handmade_wav(tmp_path / "two_seconds.wav", 16000, seconds=2.0)]
    predictor = FakePredictor()
    with deadline(30):
        rows = predict_files(None, files, predictor=predictor, max_file_seconds=2.5)
    errors = [row.get("error") for row in rows]
    assert errors[:4] == [
        "implausible header: sample rate 1 Hz (recordings have 1000 to 384000 Hz)",
        "a named pipe (FIFO), not an audio file",
        "a character device (a symbolic link to /dev/zero), not an audio file",
        "too long: its header declares 3 s, more than the 2.5 s allowed (max_file_seconds: raise it to keep "
        "such files)"]
    assert errors[4] is None and rows[4]["windows"] == 3 and predictor.calls == 3  # nothing else was decoded


def test_predict_command_takes_the_longest_file_and_names_a_refused_one(exported, capsys):
    from coughclf.cli import main

    _, _, tflite_path, files, _ = exported
    assert main(["predict", str(tflite_path), str(files["long"]), "--max-file-seconds", "2"]) == 1
    assert f"coughclf predict: error: {files['long']}: too long: its header declares 2.6 s" in capsys.readouterr().err
    assert main(["predict", str(tflite_path), str(files["long"]), "--max-file-seconds", "0"]) == 2
    assert "--max-file-seconds must be a positive number" in capsys.readouterr().err
