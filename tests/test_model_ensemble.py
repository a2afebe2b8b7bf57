"""Ensembles of different models' CV folders (coughclf.ensemble.evaluate_model_ensemble): the per-fold
rule, members that hear windows, refusals, and the ensemble folder as one model."""

import json

import numpy as np
import pytest

from coughclf.ensemble import check_members, combine_models, load_fold_ensemble
from coughclf.model_ensemble import evaluate_model_ensemble
from coughclf.errors import CoughclfError
from train_data import CLASSES, FRONTEND, RATE, write_config, write_tone_cache

WINDOWS, WINDOW_SECONDS = 3, 0.75
WINDOW = int(WINDOW_SECONDS * RATE)


def tiny_model(seed, seconds):
    import keras

    from coughclf import models

    keras.utils.set_random_seed(seed)
    return models.build("cough_small_cnn", input_mode="waveform", num_classes=2, clip_seconds=seconds,
                        frontend=FRONTEND)


def write_cv_folder(root, cache, *, windows=False, seed=0, short=False):
    """A finished 2-fold CV folder over ``cache``'s own folds, as ``coughclf cv`` leaves it; with ``windows``
    its models take 3 windows of 0.75 s of each 1 s clip, with ``short`` clips of 0.75 s."""
    root.mkdir(parents=True)
    config = write_config(root / "config.toml", cache, split='method = "fold"\nval = 0.0')
    if short:
        config.write_text(config.read_text().replace("clip_seconds = 1.0", f"clip_seconds = {WINDOW_SECONDS}"))
    if windows:
        text = config.read_text().replace('name = "tones"', 'name = "tones_windows"')
        config.write_text(text.replace("clip_seconds = 1.0", f"clip_seconds = 1.0\nwindows = {WINDOWS}\n"
                                                             f"window_seconds = {WINDOW_SECONDS}"))
    rows = [line.split(",") for line in (cache / "manifest.csv").read_text().splitlines()]
    fold_column = rows[0].index("fold")
    folds = [{"train": [row[0] for row in rows[1:] if row[fold_column] != fold],
              "validation": [], "test": [row[0] for row in rows[1:] if row[fold_column] == fold]} for fold in "12"]
    (root / "folds.json").write_text(json.dumps(folds))
    for index, split in enumerate(folds):
        run = root / f"fold-{index}"
        run.mkdir()
        (run / "split.json").write_text(json.dumps(split))
        (run / "training.json").write_text(json.dumps({"classes": list(CLASSES), "cache": str(cache)}))
        tiny_model(seed + index, WINDOW_SECONDS if windows or short else 1.0).save(run / "best.keras")
    return root


@pytest.fixture
def pair(tmp_path):
    cache = write_tone_cache(tmp_path / "cache", clips_per_class=4, folds=2)
    return cache, write_cv_folder(tmp_path / "whole", cache), write_cv_folder(tmp_path / "windows", cache,
                                                                               windows=True, seed=10)


def member_probabilities(whole_run, windows_run, audio):
    """What the ensemble of one fold must give: the mean of the whole-clip model and of the mean of the
    windowed model over its windows at 0, 0.125 s and 0.25 s."""
    import keras

    whole = keras.saving.load_model(whole_run / "best.keras", safe_mode=True)
    windowed = keras.saving.load_model(windows_run / "best.keras", safe_mode=True)
    per_window = [np.asarray(windowed.predict_on_batch(audio[:, start:start + WINDOW])) for start in (0, 2000, 4000)]
    return (np.asarray(whole.predict_on_batch(audio)) + np.mean(per_window, axis=0)) / 2


def test_each_test_fold_is_scored_by_the_models_that_held_it_out(pair, tmp_path, capsys):
    import keras

    from coughclf.baselines import clip_waveforms
    from coughclf.cache import open_cache
    from coughclf.cli import main

    cache, whole, windows = pair
    assert main(["evaluate", str(whole), str(windows), "--data", str(cache)]) == 2
    assert "own test folds" in capsys.readouterr().err
    assert main(["evaluate", str(whole), str(windows), "--out", str(tmp_path / "ensemble")]) == 0
    assert "per fold" in capsys.readouterr().out
    summary = json.loads((tmp_path / "ensemble" / "summary.json").read_text())
    assert summary["folds"] == 2 and len(summary["metrics"]["accuracy"]["values"]) == 2
    waveforms = clip_waveforms(open_cache(cache))
    folds = json.loads((whole / "folds.json").read_text())
    for index, fold in enumerate(folds):
        saved = np.load(tmp_path / "ensemble" / f"fold-{index}" / "predictions.npz")
        assert sorted(saved["ids"]) == sorted(fold["test"])
        audio = np.stack([waveforms[clip_id] for clip_id in saved["ids"]])
        expected = member_probabilities(whole / f"fold-{index}", windows / f"fold-{index}", audio)
        np.testing.assert_allclose(saved["probabilities"], expected, atol=1e-5)
        other = member_probabilities(whole / f"fold-{1 - index}", windows / f"fold-{1 - index}", audio)
        assert np.abs(other - expected).max() > 1e-3  # another fold's models would score them otherwise
    model = keras.saving.load_model(tmp_path / "ensemble" / "fold-0" / "best.keras", safe_mode=True)
    assert (model.input.shape[1], model.output.shape[1]) == (RATE, 2)
    assert not any(type(layer).__name__ == "Lambda" for layer in model._flatten_layers())
    members = json.loads((tmp_path / "ensemble" / "ensemble.json").read_text())["members"]
    assert [member["window_starts"] for member in members] == [None, [0, 2000, 4000]]


def test_the_ensemble_folder_is_one_model_every_fold_of_every_member(pair, tmp_path):
    cache, whole, windows = pair
    evaluate_model_ensemble([whole, windows], tmp_path / "ensemble", make_plots=False)
    audio = (0.3 * np.random.default_rng(0).standard_normal((3, RATE))).astype(np.float32)
    expected = np.mean([member_probabilities(whole / f"fold-{i}", windows / f"fold-{i}", audio) for i in (0, 1)],
                       axis=0)
    np.testing.assert_allclose(np.asarray(load_fold_ensemble(tmp_path / "ensemble").predict_on_batch(audio)),
                               expected, atol=1e-5)


def test_a_member_with_a_shorter_clip_hears_its_centre(pair, tmp_path):
    cache, whole, windows = pair
    short = write_cv_folder(tmp_path / "short", cache, short=True)
    members = check_members([short, whole, windows])
    assert [member["starts"] for member in members] == [[(RATE - WINDOW) // 2], None, [0, 2000, 4000]]
    assert members[0]["window_starts"] is None


def test_different_folds_or_classes_are_refused(pair, tmp_path):
    cache, whole, windows = pair
    with pytest.raises(CoughclfError, match="two CV folders at least"):
        check_members([whole])
    folds = json.loads((windows / "folds.json").read_text())
    folds[0]["test"], folds[1]["test"] = folds[1]["test"], folds[0]["test"]
    (windows / "folds.json").write_text(json.dumps(folds))
    with pytest.raises(CoughclfError, match="different folds"):
        check_members([whole, windows])
    other = write_cv_folder(tmp_path / "other", cache)
    for index in (0, 1):
        (other / f"fold-{index}" / "training.json").write_text(json.dumps({"classes": ["a", "b"]}))
    with pytest.raises(CoughclfError, match="differ in classes"):
        check_members([whole, other])


def test_a_member_of_another_length_without_windows_is_refused():
    with pytest.raises(CoughclfError, match="takes 12000 samples"):
        combine_models([(tiny_model(0, 1.0), None), (tiny_model(1, WINDOW_SECONDS), None)], RATE)


@pytest.mark.slow  # ~15 s; test_ensemble exports a CV folder's ensemble by default
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_the_ensemble_folder_exports_to_one_builtin_tflite_file(pair, tmp_path):
    from coughclf.export import export_tflite, flatbuffer_operators
    from coughclf.predict import predict_files
    from conftest import tone, write_audio

    _, whole, windows = pair
    ensemble = tmp_path / "ensemble"
    evaluate_model_ensemble([whole, windows], ensemble, make_plots=False)
    out = export_tflite(ensemble, tmp_path / "ensemble.tflite")
    assert not [name for name in flatbuffer_operators(out.read_bytes()) if name.startswith("CUSTOM:")]
    wav = write_audio(tmp_path / "clip.wav", tone(1.0, frequency=2000.0))
    from_folder, = predict_files(ensemble, [wav])
    from_tflite, = predict_files(out, [wav])
    for label in CLASSES:
        assert from_tflite["probabilities"][label] == pytest.approx(from_folder["probabilities"][label], abs=1e-5)
