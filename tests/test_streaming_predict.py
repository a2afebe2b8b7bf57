"""predict --stream: raw PCM piped in, events out as JSON lines as they happen, within one hop of the truth."""

import io
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import write_audio
from streaming_checks import TONE_LABELS, TONE_RATE, tone_detector, tone_recording

from coughclf.cli import main
from coughclf.streaming.events import EventDetector, pcm_blocks
from coughclf.streaming.export import export_streaming_tflite

BURSTS = [("low", 0.613), ("high", 1.702), ("low", 2.95)]  # 0.25 s each: a window's length


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    """The tiny tone detector as a streaming .tflite (named labels) and as a .keras file."""
    folder = tmp_path_factory.mktemp("tones")
    model = tone_detector()
    model.save(folder / "tones.keras")
    return export_streaming_tflite(model, folder / "tones_streaming.tflite", labels=TONE_LABELS), folder / "tones.keras"


def pcm_bytes(audio):
    return (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def assert_events_at_the_bursts(events, hop_seconds, labels=None):
    assert [event["label"] for event in events] == [labels[label] if labels else label for label, _ in BURSTS]
    for event, (_, start) in zip(events, BURSTS):
        assert abs(event["start"] - start) <= hop_seconds, (event, start)
        assert event["end"] == pytest.approx(event["start"] + 0.25, abs=1e-3)
        assert event["score"] > 0.9 and event["detected"] < event["end"] + hop_seconds


def test_piped_pcm_prints_events_as_they_happen_within_one_hop(detector_files):
    tflite, _ = detector_files
    hop_seconds = json.loads(tflite.with_name(tflite.name + ".json").read_text())["streaming"]["hop_seconds"]
    audio = tone_recording(BURSTS, 4.0)
    data = pcm_bytes(audio)
    command = [sys.executable, "-m", "coughclf", "predict", str(tflite), "--stream", "-", "--ignore", "background"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    # The first 1.5 s hold the first burst and its end: its event must come out before the rest is sent.
    split = 2 * int(1.5 * TONE_RATE)
    process.stdin.write(data[:split])
    process.stdin.flush()
    for _ in range(1200):
        if lines or process.poll() is not None:
            break
        threading.Event().wait(0.1)
    assert len(lines) == 1, process.stderr.read().decode()[-2000:] if process.poll() is not None else lines
    process.stdin.write(data[split:])
    process.stdin.close()
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()[-2000:]
    reader.join(timeout=10)
    events = [json.loads(line) for line in lines]
    assert all(event["file"] == "-" for event in events)
    assert_events_at_the_bursts(events, hop_seconds)


def test_a_keras_model_streams_files_with_a_timeline(detector_files, tmp_path, capsys):
    _, keras_path = detector_files
    recording = write_audio(tmp_path / "bursts.wav", tone_recording(BURSTS, 4.0), TONE_RATE, subtype="FLOAT")
    code = main(["predict", str(keras_path), "--stream", str(recording), "--ignore", "2", "--hop", "0.016",
                 "--threshold", "0.5", "--timeline", str(tmp_path / "timelines")])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert_events_at_the_bursts(events, 0.016, labels={"low": "0", "high": "1"})
    rows = (tmp_path / "timelines" / "bursts.csv").read_text().splitlines()
    assert rows[0] == "start_seconds,end_seconds,0,1,2" and len(rows) == 1 + 4000 // 16
    assert (tmp_path / "timelines" / "bursts.png").exists()


def test_stream_options_are_checked(detector_files, capsys):
    tflite, _ = detector_files
    assert main(["predict", str(tflite), "--stream", "-", "--ignore", "speech"]) == 2
    assert "--ignore speech: not a label" in capsys.readouterr().err
    assert main(["predict", str(tflite), "--stream", "-", "--json"]) == 2
    assert "drop --csv, --json" in capsys.readouterr().err
    assert main(["predict", str(tflite), "--stream", "-", "--threshold", "0"]) == 2


def test_the_refractory_time_and_ignored_labels_hold_back_events():
    detector = EventDetector(["yes", "noise"], window_seconds=1.0, threshold=0.5, refractory=0.3, ignore=["noise"])
    scores = [0.9, 0.2, 0.8, 0.1, 0.1, 0.1, 0.7, 0.7]  # the second rise comes 0.2 s after the first run ends
    events = [event for index, score in enumerate(scores)
              for event in detector.update(1.0 + 0.1 * index, [score, 1 - score])]
    events += detector.finish()
    assert [(event["label"], event["detected"], event["hops"]) for event in events] == [("yes", 1.0, 1),
                                                                                       ("yes", 1.6, 2)]
    assert events[1]["start"] == 0.65 and events[1]["score"] == 0.7


def test_raw_pcm_is_read_in_blocks_and_a_stray_byte_dropped():
    samples = np.array([0, 16384, -32768, 32767, 1], "<i2")
    blocks = list(pcm_blocks(io.BytesIO(samples.tobytes() + b"\x07"), 2))
    assert [len(block) for block in blocks] == [2, 2, 1]
    np.testing.assert_allclose(np.concatenate(blocks), samples / 32768.0)
