"""``coughclf predict``: windows, aggregation, .tflite vs .keras, bad files, the speech model."""

import json

import numpy as np
import pytest

from conftest import tone, write_audio
from coughclf.export import export_tflite, flatbuffer_operators
from coughclf.models import build
from coughclf.predict import load_predictor, predict_files, split_windows

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


def test_speech_model_exports_builtin_ops_and_decodes_text(tmp_path):
    from coughclf.ctc import greedy_decode_numpy, lexicon_decode_numpy
    from coughclf.models.deepspeech import inference_model

    model = build("deepspeech2_lite", input_mode="waveform", conv_filters=16, rnn_units=16, rnn_layers=2)
    path = export_tflite(model, tmp_path / "speech.tflite", input_length=8000)
    assert not [name for name in flatbuffer_operators(path.read_bytes()) if name.startswith("CUSTOM")]
    audio = tone(0.8, 16000, 500.0, seed=4)
    audio_file = write_audio(tmp_path / "speech.wav", audio)
    (result,) = predict_files(path, [audio_file])
    assert result["windows"] == 2
    windows = split_windows(audio, 8000, 8000)
    log_probs = np.asarray(inference_model(model, 8000).predict_on_batch(windows))
    tflite_log_probs = np.stack([load_predictor(path)(window) for window in windows])
    assert np.abs(tflite_log_probs - log_probs).max() <= 1e-3
    expected = " ".join(text for text in (greedy_decode_numpy(frames) for frames in log_probs) if text)
    assert result["text"] == expected
    # With a lexicon only its words come out, each window decoded as lexicon_decode_numpy does.
    (lexical,) = predict_files(path, [audio_file], lexicon=["yes", "no"])
    expected = " ".join(text for text in (lexicon_decode_numpy(frames, ["yes", "no"]) for frames in log_probs)
                        if text)
    assert lexical["text"] == expected and set(lexical["text"].split()) <= {"yes", "no"}
