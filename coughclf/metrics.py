"""Classification metrics on predicted class probabilities, in NumPy.

Written out rather than taken from scikit-learn so that 1,000 bootstrap resamples of
ROC AUC stay fast (one rank computation per resample and class); the tests check every
number against scikit-learn.

Conventions: ``labels`` are class indices ``[n]``; ``probabilities`` are ``[n, classes]``
rows summing to one. Binary AUC scores the probability of class 1 (the positive class,
unless ``positive`` says otherwise); with more classes, AUC is the macro average of the
one-vs-rest AUCs of the classes present.
"""

import numpy as np
from scipy.stats import rankdata


def roc_auc(labels, scores):
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half).

    Returns NaN when only one class is present.
    """
    labels = np.asarray(labels).astype(bool)
    positives = labels.sum()
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(labels, scores):
    """``(false_positive_rates, true_positive_rates, thresholds)`` with one point per distinct score.

    Predicting positive when ``score >= threshold``; the first point is (0, 0) at
    threshold +inf.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_positives = np.cumsum(labels)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    tpr = np.r_[0.0, true_positives / max(labels.sum(), 1)]
    fpr = np.r_[0.0, false_positives / max((~labels).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, scores[last_of_each_score]]


def sensitivity_at_specificity(labels, scores, specificity=0.95):
    """The highest sensitivity of any threshold whose specificity is at least ``specificity``.

    Returns ``(sensitivity, threshold)``; a screening test's operating point.
    """
    fpr, tpr, thresholds = roc_curve(labels, scores)
    allowed = fpr <= (1.0 - specificity) + 1e-12
    best = np.flatnonzero(allowed)[np.argmax(tpr[allowed])]
    return float(tpr[best]), float(thresholds[best])


def macro_auc(labels, probabilities):
    """Binary AUC on column 1 for two classes, else the mean one-vs-rest AUC over present classes."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if probabilities.shape[1] == 2:
        return roc_auc(labels == 1, probabilities[:, 1])
    per_class = [roc_auc(labels == c, probabilities[:, c]) for c in range(probabilities.shape[1])]
    per_class = [auc for auc in per_class if not np.isnan(auc)]
    return float(np.mean(per_class)) if per_class else float("nan")


def confusion_matrix(labels, predictions, num_classes):
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def per_class_scores(matrix):
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(support > 0, true_positives / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support


def bootstrap_interval(labels, probabilities, statistic, *, resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval ``(low, high)`` of ``statistic(labels, probabilities)``.

    Resamples whose statistic is undefined (NaN, e.g. AUC with one class drawn) are skipped.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        index = rng.integers(0, labels.size, labels.size)
        value = statistic(labels[index], probabilities[index])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return [float("nan"), float("nan")]
    tail = (1.0 - confidence) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def accuracy(labels, probabilities):
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels)))


def classification_metrics(labels, probabilities, class_names, *, positive=None, specificity=0.95,
                           bootstrap=1000, confidence=0.95, seed=0):
    """Every metric of a classification run, as a JSON-ready dict.

    Args:
        labels: true class indices ``[n]``.
        probabilities: predicted probabilities ``[n, classes]``.
        class_names: names in class-index order.
        positive: name of the positive class of a two-class screening task (default:
            class 1); its probability is the score for AUC and the ROC.
        specificity: the operating point for ``sensitivity_at_specificity`` (two classes).
        bootstrap: resamples for the confidence intervals of AUC and accuracy (0: none).
        confidence: the intervals' coverage.
        seed: seed of the resampling.

    Returns:
        dict with ``n``, ``accuracy``, ``auc``, ``balanced_accuracy``, ``macro_f1``,
        ``per_class`` (precision, recall, f1, support by class name), ``confusion_matrix``
        (rows: true class), ``classes_present``, and for two classes ``sensitivity`` and
        ``specificity`` at the model's decision and, when both classes occur,
        ``sensitivity_at_specificity``, plus
        ``accuracy_ci`` / ``auc_ci`` when ``bootstrap`` > 0.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = len(class_names)
    if num_classes == 2 and positive is not None and class_names.index(positive) == 0:
        probabilities = probabilities[:, ::-1]
        labels = 1 - labels
        class_names = class_names[::-1]
    matrix = confusion_matrix(labels, np.argmax(probabilities, axis=1), num_classes)
    precision, recall, f1, support = per_class_scores(matrix)
    present = support > 0
    results = {
        "n": int(labels.size),
        "accuracy": accuracy(labels, probabilities),
        "auc": macro_auc(labels, probabilities),
        "balanced_accuracy": float(np.mean(recall[present])) if present.any() else float("nan"),
        # Over the classes present: a cohort of one class (negatives only) has no F1 for the others.
        "macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "classes_present": [name for name, count in zip(class_names, support) if count],
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }
    if num_classes == 2:
        results["positive_class"] = class_names[1]
        # At the model's own decision (the larger probability); NaN where the set has no such clip.
        results["sensitivity"] = float(recall[1]) if present[1] else float("nan")
        results["specificity"] = float(recall[0]) if present[0] else float("nan")
        if present.all():
            sensitivity, threshold = sensitivity_at_specificity(labels, probabilities[:, 1], specificity)
            results["sensitivity_at_specificity"] = {"specificity": specificity,
                                                     "sensitivity": sensitivity, "threshold": threshold}
    if bootstrap:
        options = dict(resamples=bootstrap, confidence=confidence, seed=seed)
        results["accuracy_ci"] = bootstrap_interval(labels, probabilities, accuracy, **options)
        results["auc_ci"] = bootstrap_interval(labels, probabilities, macro_auc, **options)
    return results


def aggregate_by_clip(ids, labels, probabilities):
    """Clip-level predictions from window-level ones: the mean window probability per clip id.

    Returns ``(clip_ids, clip_labels, clip_probabilities)`` in order of first appearance.
    """
    ids = np.asarray(ids)
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    clip_ids, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    sums = np.zeros((clip_ids.size, probabilities.shape[1]))
    np.add.at(sums, inverse, probabilities)
    means = sums / np.bincount(inverse)[:, None]
    order = np.argsort(first)
    return clip_ids[order], labels[first][order], means[order]


def flatten_numbers(results, prefix=""):
    """``{"a": {"b": 1.0}}`` → ``{"a.b": 1.0}``: every finite-or-NaN scalar of a metrics dict.

    Lists (confusion matrices, intervals) and strings are left out: these are the
    numbers that a cross-validation summary averages.
    """
    flat = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_numbers(value, f"{name}."))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def summarize_folds(fold_results):
    """Mean and sample standard deviation (ddof=1) of every number across folds.

    Returns ``{metric: {"mean", "std", "values"}}``; a metric missing or NaN in some
    fold is averaged over the folds that have it.
    """
    flats = [flatten_numbers(result) for result in fold_results]
    names = []
    for flat in flats:
        names.extend(name for name in flat if name not in names)
    summary = {}
    for name in names:
        values = [flat.get(name, float("nan")) for flat in flats]
        finite = np.array([v for v in values if not np.isnan(v)])
        summary[name] = {
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0 if finite.size else float("nan"),
            "values": values,
        }
    return summary
