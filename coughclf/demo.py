"""``coughclf demo``: the whole workflow on data the package generates itself.

Synthetic dry and wet coughs (:mod:`coughclf.synthetic`) are written as a folder-per-class
dataset, prepared into a cache by the same code as real data, and the report's small cough
CNN is trained from raw waveforms (log-mel inside the model), evaluated with plots on
held-out subjects, exported to TFLite and used to predict a fresh clip.
"""

import time
from pathlib import Path

from coughclf import synthetic
from coughclf.console import report, result

DEMO_SECONDS = 3.0  # the small CNN's four valid-padded blocks need at least ~90 log-mel frames
DEMO_SUBJECTS = 8


def demo_config(out, *, epochs=12):
    """The demo's experiment, as a config dict that :func:`coughclf.config.config_from_dict` validates."""
    out = Path(out)
    return {
        "name": "demo",
        "description": "synthetic dry vs wet coughs, report 1's small CNN, subject-held-out test",
        "data": {
            "dataset": "folder",
            "data_dir": str(out / "data"),
            "cache": str(out / "cache"),
            "options": {"group_pattern": r"^(s\d+)_"},
            "clip_seconds": DEMO_SECONDS,
        },
        "split": {"method": "random", "val": 0.15, "test": 0.25, "seed": 0},
        "model": {"name": "cough_small_cnn", "input_mode": "waveform", "dropout": 0.1},
        "augment": {"polarity_inversion": {"probability": 0.5}, "random_gain": {"min_db": -6.0, "max_db": 6.0},
                    "seed": 0},
        "optimizer": {"name": "adam", "lr": 3e-3},
        "train": {"epochs": epochs, "batch_size": 16, "patience": 0, "monitor": "val_loss", "seed": 0},
        "metrics": {"bootstrap": 200},
    }


def run_demo(out="saved_models/demo", *, epochs=12, clips_per_class=60, export=True):
    """Generate, prepare, train, evaluate, export and predict; returns a dict of what was made."""
    from coughclf.config import config_from_dict
    from coughclf.evaluate import evaluate
    from coughclf.prepare import prepare
    from coughclf.train import train

    started = time.monotonic()
    out = Path(out)
    config = config_from_dict(demo_config(out, epochs=epochs), "demo")
    data_dir = Path(config["data"]["data_dir"])
    expected = 2 * clips_per_class
    if len(list(data_dir.glob("*/*.wav"))) != expected:
        report(f"[1/5] generating {expected} synthetic coughs (dry vs wet, {DEMO_SUBJECTS} subjects) in {data_dir}")
        synthetic.write_dataset(data_dir, clips_per_class=clips_per_class, subjects=DEMO_SUBJECTS,
                                seconds=DEMO_SECONDS)
    else:
        report(f"[1/5] reusing {expected} synthetic coughs in {data_dir}")
    report("[2/5] preparing the cache")
    prepare("folder", data_dir, config["data"]["cache"], options=config["data"]["options"])
    report(f"[3/5] training {config['model']['name']} from raw waveforms for {epochs} epochs")
    run_dir = train(config, run_dir=out / time.strftime("run-%Y%m%d-%H%M%S"), evaluate_after=False)
    report("[4/5] evaluating on held-out subjects")
    results = evaluate(run_dir)
    made = {"run_dir": str(run_dir), "accuracy": results["accuracy"], "auc": results["auc"]}
    result(f"      accuracy {results['accuracy']:.3f}, ROC AUC {results['auc']:.3f} "
          f"(95% CI {results['auc_ci'][0]:.3f}-{results['auc_ci'][1]:.3f}); plots in {run_dir / 'plots'}")
    if export:
        made.update(_export_and_predict(run_dir, out))
    made["seconds"] = round(time.monotonic() - started, 1)
    result(f"done in {made['seconds']:.0f} s: {run_dir}")
    return made


def _export_and_predict(run_dir, out):
    """Export the trained model to TFLite and classify one freshly generated clip with it."""
    import soundfile

    from coughclf.export import export_tflite
    from coughclf.predict import predict_files

    report("[5/5] exporting to TFLite and predicting a new clip with it")
    model_path = export_tflite(run_dir, Path(run_dir) / "model.tflite")
    clip_path = out / "new_wet_cough.wav"
    soundfile.write(str(clip_path), synthetic.cough_clip("wet", subject=99, seconds=DEMO_SECONDS, seed=12345),
                    16000, subtype="PCM_16")
    prediction = predict_files(model_path, [clip_path])[0]
    result(f"      {clip_path.name} (a wet cough): predicted {prediction['label']} "
          f"with probability {prediction['probability']:.2f} by {Path(model_path).name}")
    return {"tflite": str(model_path), "prediction": prediction["label"]}
