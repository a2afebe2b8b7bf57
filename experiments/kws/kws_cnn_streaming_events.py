"""RESULTS.md §9: a streaming kws_cnn run on FSDD's official test takes, as `predict --stream` runs it.

1. Window accuracy of the streaming files: each test take centred in its second (as the evaluation
   pipeline does) and fed hop by hop after silence; the last hop's window is the take's.
2. Events in one long recording: the 300 takes one after another, 1.2 s apart, in faint noise
   (-60 dBFS), through the detector of `predict --stream` (refractory 0.5 s): keywords that get an
   event of the right label centred within 0.3 s of the word, and the other events.

Run (after `coughclf train experiments/kws/kws_cnn_streaming.toml --run-dir saved_models/kws_cnn_streaming`
and `coughclf export saved_models/kws_cnn_streaming --format tflite --streaming [--quantize int8]`):

    python experiments/kws/kws_cnn_streaming_events.py saved_models/kws_cnn_streaming
"""

import json
import sys
from pathlib import Path

import numpy as np

from coughclf.audio import load_audio
from coughclf.streaming.events import EventDetector, stream_events
from coughclf.streaming.runner import hop_outputs, load_stream

SPACING, NEAR, NOISE = 1.2, 0.3, 1e-3
FILES = ("model_streaming.tflite", "model_streaming_int8.tflite")


def test_takes(run, data=Path("../shared/data/fsdd/recordings"), rate=16000):
    """``[(digit, audio)]`` of the run's test split."""
    return [(name.split("_")[0], load_audio(data / f"{name}.wav", rate))
            for name in (clip.split("/")[-1].removesuffix(".wav") for clip in json.loads(
                (run / "split.json").read_text())["test"])]


def window_accuracy(stream, takes):
    window, correct = stream.metadata["clip_samples"], 0
    for digit, audio in takes:
        stream.reset()
        before = max(0, (window - len(audio)) // 2)
        centred = np.pad(audio[:window], (before, max(0, window - before - len(audio))))
        last = [p for _, p in hop_outputs(stream, [centred])][-1]
        correct += stream.metadata["labels"][int(np.argmax(last))] == digit
    return correct


def keyword_events(stream, takes, threshold, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    audio = (NOISE * rng.standard_normal(int((len(takes) * SPACING + 1.0) * rate))).astype(np.float32)
    truth = []
    for index, (digit, take) in enumerate(takes):
        start = int((0.3 + index * SPACING) * rate)
        audio[start:start + len(take)] += take
        truth.append((digit, (start + len(take) / 2) / rate))
    stream.reset()
    window = stream.metadata["clip_samples"] / rate
    events = list(stream_events(stream, [audio], EventDetector(stream.metadata["labels"], window, threshold, 0.5)))
    centres = np.array([(event["start"] + event["end"]) / 2 for event in events])
    found, errors = set(), []
    for digit, centre in truth:
        near = [i for i in np.flatnonzero(np.abs(centres - centre) <= NEAR)
                if i not in found and events[i]["label"] == digit]
        if near:
            found.add(near[0])
            errors.append(abs(centres[near[0]] - centre))
    return {"keywords": len(truth), "events": len(events), "found": len(found), "other_events": len(events) - len(found),
            "median_centre_error_s": round(float(np.median(errors)), 3)}


def main(run):
    run = Path(run)
    takes = test_takes(run)
    for name in FILES:
        stream = load_stream(run / name)
        print(name, "window accuracy", window_accuracy(stream, takes), "/", len(takes))
        for threshold in (0.5, 0.9):
            print(name, "threshold", threshold, keyword_events(stream, takes, threshold))


if __name__ == "__main__":
    main(sys.argv[1])
