"""The embedded default: synthetic coughs that are learnable, and the demo workflow end to end."""

import json

import librosa
import numpy as np
import pytest
import soundfile

from coughclf import synthetic


def _centroid(audio):
    return float(librosa.feature.spectral_centroid(y=audio, sr=16000).mean())


def test_synthetic_classes_differ_learnably_and_deterministically():
    dry = [synthetic.cough_clip("dry", subject=s, seed=s) for s in range(6)]
    wet = [synthetic.cough_clip("wet", subject=s, seed=s) for s in range(6)]
    assert max(map(_centroid, wet)) < min(map(_centroid, dry))  # wet coughs are darker, every subject
    np.testing.assert_array_equal(synthetic.cough_clip("wet", seed=3), synthetic.cough_clip("wet", seed=3))
    assert not np.array_equal(synthetic.cough_clip("wet", seed=3), synthetic.cough_clip("wet", seed=4))
    for clip in dry + wet:
        assert clip.dtype == np.float32 and np.abs(clip).max() <= 0.9 + 1e-6


def test_synthetic_rejects_unknown_label():
    with pytest.raises(ValueError, match="dry"):
        synthetic.cough_clip("sneeze")


def test_write_dataset_layout_is_what_the_folder_loader_reads(tmp_path):
    from coughclf.datasets import get

    synthetic.write_dataset(tmp_path, clips_per_class=4, subjects=2, seconds=0.5)
    clips = get("folder").list_clips(tmp_path, group_pattern=r"^(s\d+)_")
    assert sorted({clip.label for clip in clips}) == ["dry", "wet"]
    assert {clip.group for clip in clips} == {"s0", "s1"}
    audio, rate = soundfile.read(clips[0].path)
    assert rate == 16000 and audio.shape == (8000,)


def test_demo_runs_end_to_end(tmp_path):
    from coughclf.demo import run_demo

    made = run_demo(tmp_path, epochs=2, clips_per_class=16)
    run_dir = tmp_path / made["run_dir"].split("/")[-1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["accuracy"] == made["accuracy"]
    for plot in ("learning_curves", "roc", "confusion_matrix", "spectrograms"):
        assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert made["prediction"] in ("dry", "wet")
    assert (run_dir / "model.tflite").exists()
