"""RESULTS.md §10 and docs/distillation.md: the edge table of the distilled ESC-10 students and their teachers.

For each CV folder (or single run folder) given, every fold's run is exported to TFLite float32 and int8
(built-in operators only, as `coughclf export RUN --format tflite [--quantize int8]` writes them: int8
calibrated on the run's training windows) and the files are scored on the fold's test clips: each clip cut
into the very windows the evaluation cuts (the run's [data] settings), a window at a time through the
interpreter on one thread, the clip's probabilities the mean of its windows'. Reported per folder: clip
accuracy of the Keras model (metrics.json of each run) and of each file (mean and standard deviation over the
folds), fold 0's file sizes, and its one-thread latency per window and per clip (`coughclf bench tflite
--models RUN`: medians of interleaved rounds; a clip is `data.windows` windows).

Run (after the CV folders exist, see experiments/esc/esc10_distill_*.toml):

    python experiments/esc/esc10_distill_edge.py saved_models/esc10_distill_resnet18-cv \
        saved_models/esc10_yamnet_windows-cv saved_models/esc10_distill_cnn1d-e10-cv \
        saved_models/esc10_yamnet_windows1s-cv/fold-0
"""

import json
import sys
from pathlib import Path

import numpy as np

from coughclf.bench.tflite import measure
from coughclf.ensemble import fold_runs, is_cv_folder
from coughclf.export import export_tflite, load_trained, representative_from_run
from coughclf.inputs import input_seconds, make_inputs, model_input, open_data
from coughclf.predict import TFLitePredictor
from coughclf.runs import run_config

VARIANTS = {"float32": "none", "int8": "int8"}


def file_accuracy(run, path, config, cache, seconds):
    """Clip accuracy of the ``.tflite`` file ``path`` on ``run``'s test clips, windows as evaluation cuts them."""
    predictor = TFLitePredictor(path)
    labels = {row["id"]: int(row["label_index"]) for row in cache.manifest}
    test = json.loads((run / "split.json").read_text())["test"]
    sums = {}
    for inputs, _ in make_inputs(config, cache, test, mode="eval", seconds=seconds, with_ids=True, batch_size=1):
        clip_id = inputs["id"].numpy()[0].decode()
        sums[clip_id] = sums.get(clip_id, 0) + predictor(inputs["audio"].numpy()[0])
    return float(np.mean([np.argmax(total) == labels[clip_id] for clip_id, total in sums.items()]))


def mean_std(values):
    return [round(float(np.mean(values)), 4), round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
            [round(value, 4) for value in values]]


def edge_row(folder):
    folder = Path(folder)
    accuracy, sizes = {variant: [] for variant in ("keras", *VARIANTS)}, {}
    runs = fold_runs(folder) if is_cv_folder(folder) else [folder]
    for run in runs:
        accuracy["keras"].append(json.loads((run / "metrics.json").read_text())["accuracy"])
        config = run_config(run)
        cache = open_data(config)
        model = load_trained(run)[0]
        seconds = input_seconds(model_input(config), model)
        for variant, quantize in VARIANTS.items():
            path = run / f"model_{variant}.tflite"
            representative = representative_from_run(run, model) if quantize == "int8" else None
            export_tflite(run, path, quantize, representative)
            accuracy[variant].append(file_accuracy(run, path, config, cache, seconds))
            if run == runs[0]:
                sizes[variant] = path.stat().st_size
    timing = measure(str(runs[0]), repeats=30, warmup=3, calibration=8, quantizations=["int8"])
    windows = run_config(runs[0])["data"]["windows"] or 1
    return {
        "folder": str(folder), "parameters": load_trained(runs[0])[0].count_params(),
        **{f"{variant}_accuracy": mean_std(values) for variant, values in accuracy.items()},
        "size_bytes": sizes,
        "windows_per_clip": windows,
        "ms_per_window": {variant: timing["latency_ms"][f"tflite_{variant}"] for variant in VARIANTS},
        "ms_per_clip": {variant: round(windows * timing["latency_ms"][f"tflite_{variant}"], 2) for variant in VARIANTS},
    }


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(json.dumps(edge_row(folder)), flush=True)
