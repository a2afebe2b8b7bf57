"""The classical baselines of coughclf.baselines against scikit-learn on small made-up data."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import tone
from coughclf.baselines import (grouped_auc, logistic_regression_scores, metadata_prior_scores,
                                mfcc_statistics)


def test_metadata_prior_scores_are_training_positive_rates():
    train_values = ["a", "a", "a", "a", "b", "b"]
    train_labels = [1, 1, 1, 0, 0, 1]
    scores = metadata_prior_scores(train_values, train_labels, ["b", "a", "c"])
    np.testing.assert_allclose(scores, [0.5, 0.75, 4 / 6])


def test_metadata_prior_auc_equals_the_indicator_auc():
    rng = np.random.default_rng(0)
    source = rng.choice(["call-center", "telegram"], 200)
    labels = np.where(source == "call-center", rng.random(200) < 0.7, rng.random(200) < 0.3)
    scores = metadata_prior_scores(source[:100], labels[:100], source[100:])
    indicator = (source[100:] == "call-center").astype(float)
    assert grouped_auc(labels[100:], scores, {})["auc"] == pytest.approx(roc_auc_score(labels[100:], indicator))


def test_grouped_auc_matches_scikit_learn_within_each_group():
    rng = np.random.default_rng(1)
    labels = rng.random(120) < 0.5
    scores = labels * 0.3 + rng.random(120)
    groups = rng.choice(["x", "y"], 120)
    result = grouped_auc(labels, scores, {"meta_source": groups})
    assert result["auc"] == pytest.approx(roc_auc_score(labels, scores))
    for value in ("x", "y"):
        inside = groups == value
        assert result["groups"]["meta_source"][value] == pytest.approx(roc_auc_score(labels[inside], scores[inside]))


def test_mfcc_logistic_regression_separates_low_from_high_tones():
    clips = [tone(0.5, frequency=frequency, seed=seed) for seed in range(10) for frequency in (300.0, 3000.0)]
    labels = np.array([frequency == 3000.0 for _ in range(10) for frequency in (300.0, 3000.0)])
    features = np.stack([mfcc_statistics(clip, 16000) for clip in clips])
    assert features.shape == (20, 40)
    scores = logistic_regression_scores(features[:12], labels[:12], features[12:])
    assert roc_auc_score(labels[12:], scores) == 1.0
