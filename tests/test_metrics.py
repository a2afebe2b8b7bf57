"""Metrics against scikit-learn and hand computations on fixed predictions."""

import numpy as np
import pytest
from sklearn import metrics as skm

from coughclf import metrics


def _predictions(num_classes, n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    logits = rng.normal(size=(n, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    logits = np.round(logits, 1)  # ties in the scores, which AUC must count as one half
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_classification_metrics_match_scikit_learn(num_classes):
    labels, probabilities = _predictions(num_classes)
    names = [f"c{i}" for i in range(num_classes)]
    results = metrics.classification_metrics(labels, probabilities, names, bootstrap=0)
    predictions = probabilities.argmax(axis=1)

    assert results["accuracy"] == pytest.approx(skm.accuracy_score(labels, predictions))
    if num_classes == 2:
        expected_auc = skm.roc_auc_score(labels, probabilities[:, 1])
    else:
        expected_auc = skm.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert results["auc"] == pytest.approx(expected_auc, abs=1e-12)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=list(range(num_classes)), zero_division=0)
    for i, name in enumerate(names):
        assert results["per_class"][name]["precision"] == pytest.approx(precision[i])
        assert results["per_class"][name]["recall"] == pytest.approx(recall[i])
        assert results["per_class"][name]["f1"] == pytest.approx(f1[i])
        assert results["per_class"][name]["support"] == support[i]
    assert results["macro_f1"] == pytest.approx(skm.f1_score(labels, predictions, average="macro"))
    assert results["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predictions))
    np.testing.assert_array_equal(results["confusion_matrix"],
                                  skm.confusion_matrix(labels, predictions, labels=list(range(num_classes))))


def test_roc_curve_matches_scikit_learn():
    labels, probabilities = _predictions(2, n=200, seed=3)
    fpr, tpr, thresholds = metrics.roc_curve(labels, probabilities[:, 1])
    sk_fpr, sk_tpr, sk_thresholds = skm.roc_curve(labels, probabilities[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:])


def test_sensitivity_at_95_specificity_by_hand():
    # 20 negatives: 18 scored 0.00..0.17, one 0.85 and one 0.95; 10 positives. Specificity
    # >= 0.95 allows one false positive in 20, so the threshold must rise above the 0.85
    # negative: the next score is 0.9, which passes the positives 0.97, 0.96, 0.95 and 0.9.
    negatives = np.r_[np.arange(18) / 100, 0.85, 0.95]
    positives = np.array([0.97, 0.96, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    scores = np.r_[negatives, positives]
    labels = np.r_[np.zeros(20), np.ones(10)]
    sensitivity, threshold = metrics.sensitivity_at_specificity(labels, scores, 0.95)
    assert threshold == pytest.approx(0.9)
    assert sensitivity == pytest.approx(4 / 10)
    # Requiring 100% specificity leaves only the two positives above every negative.
    assert metrics.sensitivity_at_specificity(labels, scores, 0.999)[0] == pytest.approx(2 / 10)


def test_positive_class_swaps_the_scored_column():
    labels, probabilities = _predictions(2, seed=5)
    default = metrics.classification_metrics(labels, probabilities, ["neg", "pos"], bootstrap=0)
    swapped = metrics.classification_metrics(labels, probabilities, ["neg", "pos"], positive="neg",
                                             bootstrap=0)
    assert default["positive_class"] == "pos" and swapped["positive_class"] == "neg"
    expected = skm.roc_curve(1 - labels, probabilities[:, 0])
    sensitivity = swapped["sensitivity_at_specificity"]["sensitivity"]
    assert sensitivity == pytest.approx(max(t for f, t in zip(expected[0], expected[1]) if f <= 0.05))


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    labels, probabilities = _predictions(2, n=400, seed=7)
    first = metrics.classification_metrics(labels, probabilities, ["a", "b"], bootstrap=200, seed=1)
    again = metrics.classification_metrics(labels, probabilities, ["a", "b"], bootstrap=200, seed=1)
    assert first["auc_ci"] == again["auc_ci"]
    low, high = first["auc_ci"]
    assert low < first["auc"] < high and high - low < 0.2
    # A standard-error check: the 95% interval spans about 4 bootstrap standard deviations.
    rng = np.random.default_rng(1)
    draws = [metrics.accuracy(labels[i], probabilities[i])
             for i in (rng.integers(0, 400, 400) for _ in range(200))]
    assert first["accuracy_ci"][1] - first["accuracy_ci"][0] == pytest.approx(3.92 * np.std(draws), rel=0.25)


def test_clip_level_aggregation_averages_window_probabilities():
    ids = np.array(["b", "a", "b", "a", "c"])
    labels = np.array([1, 0, 1, 0, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    clip_ids, clip_labels, clip_probabilities = metrics.aggregate_by_clip(ids, labels, probabilities)
    assert list(clip_ids) == ["b", "a", "c"]
    assert list(clip_labels) == [1, 0, 1]
    np.testing.assert_allclose(clip_probabilities, [[0.6, 0.4], [0.4, 0.6], [0.4, 0.6]])
    # Window accuracy 3/5 but clip accuracy 1/3: one confident wrong window outweighs a right one.
    assert metrics.accuracy(labels, probabilities) == pytest.approx(3 / 5)
    assert metrics.accuracy(clip_labels, clip_probabilities) == pytest.approx(1 / 3)


def test_summarize_folds_mean_and_std():
    folds = [{"auc": 0.6, "per_class": {"x": {"f1": 0.5}}}, {"auc": 0.8, "per_class": {"x": {"f1": 0.7}}},
             {"auc": 0.7, "per_class": {"x": {"f1": None}}}]
    summary = metrics.summarize_folds(folds)
    assert summary["auc"]["mean"] == pytest.approx(0.7)
    assert summary["auc"]["std"] == pytest.approx(np.std([0.6, 0.8, 0.7], ddof=1))
    assert summary["per_class.x.f1"]["mean"] == pytest.approx(0.6)
    assert np.isnan(summary["per_class.x.f1"]["values"][2])
