"""Fold ensembles (coughclf.ensemble): a CV folder as the average of its fold models."""

import json

import numpy as np
import pytest

from coughclf.ensemble import average_models, ensemble_info, fold_runs, load_fold_ensemble
from coughclf.errors import CoughclfError
from train_data import CLASSES, FRONTEND, RATE, write_config, write_tone_cache

FOLDS = 3


def fold_model(seed, metadata_dim=0):
    import keras

    from coughclf import models

    keras.utils.set_random_seed(seed)
    options = {"metadata_dim": metadata_dim} if metadata_dim else {}
    name = "resnet18" if metadata_dim else "cough_small_cnn"
    if metadata_dim:
        return models.build(name, input_mode="waveform", num_classes=2, clip_seconds=1.0, n_mels=32,
                            frontend={"n_fft": 512, "hop_length": 256}, frames=63, **options)
    return models.build(name, input_mode="waveform", num_classes=2, clip_seconds=1.0, frontend=FRONTEND)


def write_cv_folder(root, *, folds=FOLDS, classes=CLASSES, unfinished=(), metadata_dim=0):
    """A CV folder as ``coughclf cv`` leaves it: config.toml, folds.json, fold-i/best.keras + training.json."""
    root.mkdir(parents=True)
    cache = write_tone_cache(root.parent / f"{root.name}-cache", clips_per_class=4)
    write_config(root / "config.toml", cache)
    (root / "folds.json").write_text(json.dumps([{"train": [], "validation": [], "test": []}] * folds))
    for index in range(folds):
        run = root / f"fold-{index}"
        run.mkdir()
        (run / "training.json").write_text(json.dumps({"classes": list(classes)}))
        if index not in unfinished:
            fold_model(index, metadata_dim).save(run / "best.keras")
    return root


def clips(count=4, seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal((count, RATE))).astype(np.float32)


def test_ensemble_is_the_mean_of_the_fold_models_and_round_trips(tmp_path):
    import keras

    cv_dir = write_cv_folder(tmp_path / "cv")
    ensemble = load_fold_ensemble(cv_dir)
    audio = clips()
    folds = [keras.saving.load_model(run / "best.keras", safe_mode=True) for run in fold_runs(cv_dir)]
    per_fold = np.stack([np.asarray(model.predict_on_batch(audio)) for model in folds])
    assert np.abs(per_fold[0] - per_fold[1]).max() > 1e-3  # the folds differ, so the mean means something
    expected = per_fold.mean(axis=0)
    np.testing.assert_allclose(np.asarray(ensemble.predict_on_batch(audio)), expected, atol=1e-6)
    assert [layer.name for layer in ensemble.layers] == ["audio", "fold_0", "fold_1", "fold_2", "mean_probabilities"]
    assert not any(type(layer).__name__ == "Lambda" for layer in ensemble._flatten_layers())
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(audio)), expected, atol=1e-6)


def test_ensemble_info_gives_labels_sample_rate_and_clip_length(tmp_path):
    cv_dir = write_cv_folder(tmp_path / "cv")
    info = ensemble_info(cv_dir)
    assert info["labels"] == list(CLASSES)
    assert (info["sample_rate"], info["clip_samples"], info["clip_seconds"]) == (RATE, RATE, 1.0)
    assert info["folds"] == FOLDS and info["model"] == "cough_small_cnn"
    assert info["runs"] == [str(cv_dir / f"fold-{i}") for i in range(FOLDS)]


def test_unfinished_fold_other_folders_and_mismatched_folds_are_refused(tmp_path):
    cv_dir = write_cv_folder(tmp_path / "cv", unfinished=(1,))
    with pytest.raises(CoughclfError, match=r"fold-1 of 3 folds have no best.keras.*--run-dir"):
        load_fold_ensemble(cv_dir)
    with pytest.raises(CoughclfError, match="not a cross-validation folder"):
        fold_runs(cv_dir / "fold-0")
    mixed = write_cv_folder(tmp_path / "mixed")
    (mixed / "fold-2" / "training.json").write_text(json.dumps({"classes": ["a", "b"]}))
    with pytest.raises(CoughclfError, match="different classes"):
        load_fold_ensemble(mixed)
    speech = write_cv_folder(tmp_path / "speech", folds=1)
    (speech / "config.toml").write_text('task = "ctc"\n[model]\nname = "deepspeech2_lite"\n[data]\n'
                                        'dataset = "yesno"\ndata_dir = "."\n')
    with pytest.raises(CoughclfError, match="speech"):
        load_fold_ensemble(speech)


def test_models_with_a_metadata_input_are_refused():
    with pytest.raises(CoughclfError, match="metadata input"):
        average_models([fold_model(0, metadata_dim=2), fold_model(1, metadata_dim=2)])


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_a_cv_folder_exports_to_one_builtin_tflite_file_and_predicts_with_its_labels(tmp_path):
    from conftest import tone, write_audio

    from coughclf.export import export_tflite, flatbuffer_operators, sidecar_path
    from coughclf.predict import predict_files

    cv_dir = write_cv_folder(tmp_path / "cv", folds=2)
    out = export_tflite(cv_dir, tmp_path / "ensemble.tflite")
    assert not [name for name in flatbuffer_operators(out.read_bytes()) if name.startswith("CUSTOM:")]
    sidecar = json.loads(sidecar_path(out).read_text())
    assert (sidecar["labels"], sidecar["clip_samples"], sidecar["sample_rate"]) == (list(CLASSES), RATE, RATE)
    wav = write_audio(tmp_path / "clip.wav", tone(1.5, frequency=2000.0))
    from_folder, = predict_files(cv_dir, [wav])
    from_tflite, = predict_files(out, [wav])
    assert from_folder["label"] in CLASSES and from_folder["windows"] == 2
    assert from_tflite["label"] == from_folder["label"]
    for label in CLASSES:
        assert from_tflite["probabilities"][label] == pytest.approx(from_folder["probabilities"][label], abs=1e-5)
    audio = np.stack([tone(1.5, frequency=2000.0)[:RATE], tone(1.5, frequency=2000.0)[-RATE:]])
    expected = np.asarray(load_fold_ensemble(cv_dir).predict_on_batch(audio)).mean(axis=0)
    np.testing.assert_allclose([from_folder["probabilities"][label] for label in CLASSES], expected, atol=1e-5)


def test_evaluate_takes_a_cv_folder_on_other_data_only(tmp_path):
    from coughclf.baselines import clip_waveforms
    from coughclf.cache import open_cache
    from coughclf.evaluate import evaluate

    cv_dir = write_cv_folder(tmp_path / "cv")
    other = write_tone_cache(tmp_path / "other", clips_per_class=3)
    with pytest.raises(CoughclfError, match="--data CACHE --split all"):
        evaluate(cv_dir)
    results = evaluate(cv_dir, data=other, split="all", make_plots=False)
    assert results["clips"] == 6
    saved = np.load(cv_dir / "predictions-all-other.npz")
    waveforms = clip_waveforms(open_cache(other))
    expected = np.asarray(load_fold_ensemble(cv_dir).predict_on_batch(np.stack([waveforms[i] for i in saved["ids"]])))
    np.testing.assert_allclose(saved["probabilities"], expected, atol=1e-5)
    assert results["accuracy"] == pytest.approx(np.mean(np.argmax(expected, axis=1) == saved["labels"]))
