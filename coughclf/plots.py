"""PNG figures of a run: learning curves, ROC curves, confusion matrix, example spectrograms, CV summaries.

Every function draws one figure with matplotlib's Agg backend (no display needed),
writes it to ``path`` atomically and returns the path.
"""

from pathlib import Path

import numpy as np

from coughclf import metrics as metric_functions
from coughclf.files import atomic_path


def load_pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (plots are files, never windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path):
    """Write ``figure`` to ``path`` as PNG atomically (temporary name, then rename) and close it."""
    try:
        with atomic_path(path, suffix=".png") as temporary:  # savefig picks the format from the suffix
            figure.savefig(temporary, dpi=110, bbox_inches="tight")
    finally:
        load_pyplot().close(figure)
    return Path(path)


def learning_curves(history_rows, path, *, monitor=None, title="Learning curves"):
    """Loss and every metric per epoch, training beside validation; the best epoch marked."""
    from matplotlib.ticker import MaxNLocator

    plt = load_pyplot()
    names = [key for key in history_rows[0] if key not in ("epoch", "learning_rate") and not key.startswith("val_")]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False,
                                layout="constrained")
    epochs = [row["epoch"] + 1 for row in history_rows]
    best_epoch = None
    if monitor and any(row.get(monitor) is not None for row in history_rows):
        pick = np.nanargmax if any(part in monitor for part in ("acc", "auc")) else np.nanargmin
        values = [row.get(monitor, np.nan) for row in history_rows]
        best_epoch = epochs[int(pick(values))]
    for axis, name in zip(axes[0], names):
        axis.plot(epochs, [row.get(name) for row in history_rows], marker="o", ms=3, label="training")
        if any(f"val_{name}" in row for row in history_rows):
            axis.plot(epochs, [row.get(f"val_{name}") for row in history_rows], marker="o", ms=3,
                      label="validation")
        if best_epoch is not None:
            axis.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(name)
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    return save_figure(figure, path)


def roc_curves(labels, probabilities, class_names, path, *, title="ROC curve", specificity=None):
    """Binary: the ROC of the positive class (class 1), with the operating point at ``specificity``.
    More classes: one one-vs-rest curve per class."""
    plt = load_pyplot()
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    figure, axis = plt.subplots(figsize=(5, 5), layout="constrained")
    columns = [1] if len(class_names) == 2 else range(len(class_names))
    for column in columns:
        truth = labels == column
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = metric_functions.roc_curve(truth, probabilities[:, column])
        auc = metric_functions.roc_auc(truth, probabilities[:, column])
        name = f"{class_names[column]} (positive)" if len(class_names) == 2 else f"{class_names[column]} vs rest"
        axis.plot(fpr, tpr, lw=2, label=f"{name}: AUC {auc:.3f}")
    if specificity is not None and len(class_names) == 2 and 0 < labels.sum() < labels.size:
        sensitivity, _ = metric_functions.sensitivity_at_specificity(labels == 1, probabilities[:, 1], specificity)
        axis.plot([1 - specificity], [sensitivity], "ko",
                  label=f"sensitivity {sensitivity:.2f} at specificity {specificity:.2f}")
    axis.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
    axis.set_xlabel("false positive rate (1 − specificity)")
    axis.set_ylabel("true positive rate (sensitivity)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    return save_figure(figure, path)


def confusion_matrix(matrix, class_names, path, *, title="Confusion matrix"):
    """Counts, with the share of each true class in brackets; rows are the true classes."""
    plt = load_pyplot()
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(class_names) + 2.5)
    figure, axis = plt.subplots(figsize=(size + 1, size), layout="constrained")
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="share of the true class")
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    small = len(class_names) > 6
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            text = f"{matrix[row, column]}" if small else f"{matrix[row, column]}\n({shares[row, column]:.0%})"
            axis.text(column, row, text, ha="center", va="center", fontsize=7 if small else 9,
                      color="white" if shares[row, column] > 0.5 else "black")
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    return save_figure(figure, path)


def spectrograms(examples, path, *, sample_rate, hop_length, title="Example log-mel spectrograms"):
    """``examples``: ``(log_mel [frames, n_mels], caption)`` pairs, drawn side by side in dB."""
    plt = load_pyplot()
    figure, axes = plt.subplots(1, len(examples), figsize=(3.6 * len(examples), 3.8), squeeze=False,
                                layout="constrained")
    image = None
    for axis, (log_mel, caption) in zip(axes[0], examples):
        log_mel = np.asarray(log_mel)
        seconds = log_mel.shape[0] * hop_length / sample_rate
        image = axis.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma",
                            extent=(0, seconds, 0, log_mel.shape[1]))
        axis.set_xlabel("time (s)")
        axis.set_ylabel("mel band")
        axis.set_title(caption, fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=list(axes[0]), label="dB")
    figure.suptitle(title)
    return save_figure(figure, path)


def cross_validation_roc(fold_curves, path, *, title="ROC curve per fold"):
    """``fold_curves``: ``(fold name, labels, positive-class scores)``; one curve per fold."""
    plt = load_pyplot()
    figure, axis = plt.subplots(figsize=(5, 5), layout="constrained")
    aucs = []
    for name, labels, scores in fold_curves:
        labels = np.asarray(labels).astype(bool)
        if labels.all() or not labels.any():
            continue
        fpr, tpr, _ = metric_functions.roc_curve(labels, scores)
        aucs.append(metric_functions.roc_auc(labels, scores))
        axis.plot(fpr, tpr, lw=1.5, alpha=0.8, label=f"{name}: AUC {aucs[-1]:.3f}")
    axis.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
    if aucs:
        std = np.std(aucs, ddof=1) if len(aucs) > 1 else 0.0
        title = f"{title}\nmean AUC {np.mean(aucs):.3f} ± {std:.3f}"
    axis.set_xlabel("false positive rate (1 − specificity)")
    axis.set_ylabel("true positive rate (sensitivity)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    return save_figure(figure, path)


def cross_validation_bars(summary, names, path, *, title="Metrics per fold"):
    """One group of bars per metric in ``names``: each fold's value, and the mean ± std."""
    plt = load_pyplot()
    names = [name for name in names if name in summary]
    folds = len(summary[names[0]]["values"]) if names else 0
    figure, axis = plt.subplots(figsize=(max(5, 1.6 * len(names) + 2), 4.2), layout="constrained")
    width = 0.8 / (folds + 1)
    positions = np.arange(len(names))
    for fold in range(folds):
        axis.bar(positions + fold * width, [summary[name]["values"][fold] for name in names], width,
                 label=f"fold {fold}", alpha=0.75)
    axis.bar(positions + folds * width, [summary[name]["mean"] for name in names], width,
             yerr=[summary[name]["std"] for name in names], capsize=4, color="black", alpha=0.8,
             label="mean ± std")
    axis.set_xticks(positions + folds * width / 2, [name.replace("_", " ").replace(".", "\n") for name in names])
    axis.set_ylabel("value")
    axis.set_ylim(0, 1.05)
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, ncol=min(folds + 1, 4), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return save_figure(figure, path)
