"""The classical baselines (coughclf.baselines, ``coughclf baseline``, ``coughclf cv --baseline``)."""

import json

import numpy as np
import pytest

from conftest import tone
from coughclf.baselines import (BASELINES, PRIOR, classifier_probabilities, log_mel_statistics,
                                metadata_prior_scores, mfcc_statistics, run_baselines)
from coughclf.cli import main
from train_data import write_config, write_tone_cache

FREQUENCIES = (300.0, 1200.0, 3000.0)


def test_metadata_prior_scores_are_training_positive_rates():
    train_values = ["a", "a", "a", "a", "b", "b"]
    train_labels = [1, 1, 1, 0, 0, 1]
    scores = metadata_prior_scores(train_values, train_labels, ["b", "a", "c"])
    np.testing.assert_allclose(scores, [0.5, 0.75, 4 / 6])


def test_log_mel_statistics_are_band_means_and_deviations_in_db():
    import librosa

    clip = tone(0.5, frequency=1000.0)
    features = log_mel_statistics(clip, 16000)
    bands = librosa.power_to_db(librosa.feature.melspectrogram(y=clip, sr=16000, n_mels=64), ref=1.0)
    assert features.shape == (128,)
    np.testing.assert_allclose(features[:64], bands.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(features[64:], bands.std(axis=1), rtol=1e-5)
    assert np.argmax(features[:64]) == np.argmax(bands.mean(axis=1))  # the 1 kHz band is the loudest


@pytest.mark.parametrize("classifier", ["logistic_regression", "svm"])
def test_classifiers_separate_three_tones_and_leave_absent_classes_at_zero(classifier):
    clips = [tone(0.5, frequency=f * (1 + 0.03 * seed), seed=seed) for seed in range(8) for f in FREQUENCIES]
    labels = np.array([index for _ in range(8) for index in range(3)])
    features = np.stack([mfcc_statistics(clip, 16000) for clip in clips])
    assert features.shape == (24, 40)
    probabilities = classifier_probabilities(classifier, features[:15], labels[:15], features[15:], num_classes=4)
    assert probabilities.shape == (9, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probabilities[:, 3], 0.0)  # class 3 never trained
    np.testing.assert_array_equal(np.argmax(probabilities, axis=1), labels[15:])


def test_baselines_run_on_the_cv_folds_with_the_metrics_of_evaluate(tmp_path):
    from coughclf.config import load_config
    from coughclf.cv import fold_splits
    from coughclf.inputs import open_data

    cache = write_tone_cache(tmp_path / "cache", clips_per_class=12)
    path = write_config(tmp_path / "cv.toml", cache, split='method = "kfold"\nk = 3\nval = 0.2',
                        extra='group_by = ["meta_source"]')
    config = load_config(path)
    report = run_baselines(config, out_dir=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "baseline.json").read_text())["folds"] == 3
    assert list(report["baselines"]) == [*BASELINES, PRIOR]  # binary with group_by: the metadata prior too
    folds = fold_splits(config, open_data(config))
    for name, entry in report["baselines"].items():
        assert [fold["clips"] for fold in entry["per_fold"]] == [len(fold["test"]) for fold in folds]
        assert set(entry["per_fold"][0]) >= {"accuracy", "auc", "balanced_accuracy", "macro_f1", "per_class",
                                             "accuracy_ci", "sensitivity_at_specificity", "groups"}
        assert set(entry["per_fold"][0]["groups"]["meta_source"]) == {"app", "phone"}
    for name in BASELINES:  # tones: every classical baseline ranks them perfectly
        assert report["baselines"][name]["summary"]["auc"]["mean"] == 1.0
    assert report["baselines"]["mfcc_logistic_regression"]["summary"]["accuracy"]["mean"] == 1.0
    # meta_source alternates with the take, not the class: the prior knows nothing
    assert report["baselines"][PRIOR]["summary"]["auc"]["mean"] == pytest.approx(0.5, abs=0.15)
    prior_fold = report["baselines"][PRIOR]["per_fold"][0]["groups"]["meta_source"]["app"]
    assert prior_fold["auc"] == 0.5  # one score for all clips of one source


def test_baseline_command_prints_a_table_and_json(tmp_path, capsys):
    cache = write_tone_cache(tmp_path / "cache", clips_per_class=10)
    path = write_config(tmp_path / "exp.toml", cache, )
    assert main(["baseline", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 split(s) of")  # a random split: train's one test part
    assert lines[1].split() == ["accuracy", "auc", "balanced_accuracy", "macro_f1"]
    assert [line.split()[0] for line in lines[2:]] == list(BASELINES)
    assert main(["baseline", str(path), "--json", "--set", "split.seed=3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["folds"] == 1 and set(report["baselines"]) == set(BASELINES)


def test_baseline_of_a_speech_config_is_refused(tmp_path, capsys):
    path = tmp_path / "speech.toml"
    path.write_text('task = "ctc"\n[data]\ndataset = "yesno"\ndata_dir = "."\n[model]\nname = "deepspeech2_lite"\n')
    assert main(["baseline", str(path)]) == 2
    assert "speech (ctc)" in capsys.readouterr().err


@pytest.mark.slow
def test_cv_baseline_prints_the_model_row_beside_the_baselines_on_the_same_folds(tmp_path, capsys):
    cache = write_tone_cache(tmp_path / "cache", clips_per_class=8)
    path = write_config(tmp_path / "cv.toml", cache, epochs=1, split='method = "kfold"\nk = 2\nval = 0.25',
                        )
    out = tmp_path / "cv"
    assert main(["cv", str(path), "--run-dir", str(out), "--baseline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.split()[:1] == ["accuracy"])):]
    assert [line.split()[0] for line in table[1:]] == ["cough_small_cnn", *BASELINES]
    saved = json.loads((out / "baseline.json").read_text())
    folds = json.loads((out / "folds.json").read_text())
    assert [fold["clips"] for fold in saved["baselines"]["mfcc_svm"]["per_fold"]] == [len(f["test"]) for f in folds]
    summary = json.loads((out / "summary.json").read_text())
    model_accuracy = f"{summary['metrics']['accuracy']['mean']:.4f}"
    assert table[1].split()[1] == model_accuracy

