"""Fold ensembles (coughclf.ensemble): a CV folder as the average of its fold models."""

import json

import numpy as np
import pytest

from coughclf.ensemble import average_models, ensemble_info, fold_runs, inference_ensemble, load_fold_ensemble
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
        ensemble_info(mixed)


def test_models_with_a_metadata_input_are_refused():
    with pytest.raises(CoughclfError, match="metadata input"):
        average_models([fold_model(0, metadata_dim=2), fold_model(1, metadata_dim=2)])


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_inference_ensemble_converts_to_one_builtin_tflite_file_with_the_same_probabilities(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from coughclf.export import check_builtin_only, convert_tflite

    cv_dir = write_cv_folder(tmp_path / "cv", folds=2)
    content = convert_tflite(inference_ensemble(cv_dir))
    check_builtin_only(content, "the fold ensemble")
    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    audio = clips(2, seed=1)
    expected = np.asarray(load_fold_ensemble(cv_dir).predict_on_batch(audio))
    for clip, probabilities in zip(audio, expected):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip[None])
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
        np.testing.assert_allclose(output, probabilities, atol=1e-5)
