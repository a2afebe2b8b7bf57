"""``coughclf cv``: k-fold or predefined-fold cross-validation, one run folder per fold, one summary.

Folds come from :func:`coughclf.splits.kfold`: ``split.method = "kfold"`` makes
``split.k`` group-aware, label-stratified folds; ``"fold"`` uses the dataset's own
folds (ESC-50's five, FSDD speakers…). Within each fold, ``split.val`` of the training
part (whole groups) is the validation set that early stopping and the best checkpoint
watch; the held-out fold is the test set.

The CV folder holds ``config.toml``, ``folds.json`` (the clip ids of every fold),
``fold-{i}/`` (a complete run folder each), ``summary.json`` / ``summary.csv`` (mean
and standard deviation over folds of every metric) and ``plots/``. A fold is done once
``fold-{i}/fold-done.json`` exists (written atomically after its evaluation); a killed
CV run started again skips the done folds and resumes the unfinished one from its
resume state (:mod:`coughclf.resume_state`).
"""

from pathlib import Path

import numpy as np

from coughclf import metrics as metric_functions
from coughclf import plots
from coughclf.config import check_data
from coughclf.console import report
from coughclf.errors import CoughclfError
from coughclf.files import read_json, write_csv, write_json
from coughclf.inputs import open_data
from coughclf.runs import claim_run_dir, default_run_folder, is_chief, make_strategy

DONE_MARKER = "fold-done.json"
# Metrics drawn in the per-fold bar chart when present.
BAR_METRICS = ("accuracy", "auc", "balanced_accuracy", "macro_f1", "sensitivity_at_specificity.sensitivity")


def fold_splits(config, cache):
    """``[{"train", "validation", "test"}, ...]``: the clip ids of every fold (extra training clips,
    ``[[data.extra_train]]``, train in every fold)."""
    from coughclf import splits
    from coughclf.datasets.extra import with_extra, without_extra
    from coughclf.inputs import by_group, with_validation

    method = config["split"]["method"]
    if method not in ("kfold", "fold"):
        raise CoughclfError(f"{config.source}: cross-validation needs split.method = 'kfold' (k random "
                            f"group folds) or 'fold' (the dataset's folds), not {method!r}; "
                            "add --set split.method=kfold")
    main, extra_ids = without_extra(cache)
    folds = splits.kfold(main.manifest, k=config["split"]["k"], seed=config["split"]["seed"],
                         predefined=method == "fold", group_by=by_group(config))
    return [with_extra(with_validation(config, main, train_ids, test_ids), extra_ids)
            for train_ids, test_ids in folds]


def cross_validate(config, out_dir=None, strategy=None, *, callbacks=()):
    """Train and evaluate every fold of ``config``; returns the summary (also summary.json).

    Args:
        config: an :class:`coughclf.config.ExperimentConfig`.
        out_dir: the CV folder; an unfinished one resumes. Default
            ``saved_models/{name}-cv-{timestamp}``.
        strategy: as for :func:`coughclf.train.train`.
        callbacks: extra Keras callbacks for every fold's training.

    Returns:
        ``{"folds": k, "metrics": {name: {"mean", "std", "values"}}, "out_dir": ...}``
        with the sample standard deviation (ddof=1) over folds.

    Example::

        from coughclf.config import load_config
        from coughclf.cv import cross_validate
        summary = cross_validate(load_config("experiments/kws/kws_cnn_loso.toml"))
        print(summary["metrics"]["accuracy"])
    """
    import time

    from coughclf.evaluate import summary_lines
    from coughclf.train import train

    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    out_dir = Path(out_dir) if out_dir else default_run_folder(config, f"-cv-{time.strftime('%Y%m%d-%H%M%S')}")
    check_data(config)  # missing data or weights fail before the CV folder is claimed
    distilled = config["distill"]["teacher"] is not None
    if distilled:  # before the folder and the data: a teacher that cannot be read fails at once
        from coughclf.distillation.teachers import check_teacher

        check_teacher(config)
    chief = is_chief(strategy)
    if chief:
        claim_run_dir(config, out_dir)
    cache = open_data(config)
    folds_path = out_dir / "folds.json"
    folds = read_json(folds_path) if folds_path.exists() else fold_splits(config, cache)
    if distilled:  # every fold has a teacher that never saw its test part, before the first fold trains
        check_teacher(config, folds)
    if chief:
        write_json(folds_path, folds)
    results = []
    for index, split in enumerate(folds):
        fold_dir = out_dir / f"fold-{index}"
        marker = fold_dir / DONE_MARKER
        if marker.exists():
            report(f"fold {index + 1}/{len(folds)} already done ({fold_dir})")
            results.append(read_json(marker))
            continue
        report(f"fold {index + 1}/{len(folds)} ({fold_dir})")  # its training prints the parts' sizes
        train(config, fold_dir, strategy, split=split, callbacks=callbacks)
        if chief:
            fold_metrics = read_json(fold_dir / "metrics.json")
            report("\n".join(summary_lines(fold_metrics)))
            write_json(marker, fold_metrics)
            results.append(fold_metrics)
    if not chief:
        return None
    return summarize(config, out_dir, results)


def summarize(config, out_dir, fold_results):
    """Write summary.json, summary.csv and the combined plots from every fold's metrics."""
    out_dir = Path(out_dir)
    summary = metric_functions.summarize_folds(fold_results)
    report = {"name": config["name"], "model": config["model"]["name"], "folds": len(fold_results),
              "method": config["split"]["method"], "std": "sample standard deviation over folds (ddof=1)",
              "out_dir": str(out_dir), "metrics": summary}
    write_json(out_dir / "summary.json", report)
    write_csv(out_dir / "summary.csv", [[name, entry["mean"], entry["std"], *entry["values"]]
                                        for name, entry in summary.items()],
              columns=["metric", "mean", "std", *[f"fold_{i}" for i in range(len(fold_results))]])
    _plot(config, out_dir, summary, len(fold_results))
    return report


def _plot(config, out_dir, summary, folds):
    plots.cross_validation_bars(summary, BAR_METRICS, out_dir / "plots" / "metrics_per_fold.png",
                                title=f"{config['name']}: {folds}-fold cross-validation (test folds)")
    curves = []
    for index in range(folds):
        predictions = out_dir / f"fold-{index}" / "predictions.npz"
        if not predictions.exists():
            return
        saved = np.load(predictions)
        classes = list(saved["classes"])
        if len(classes) != 2:
            return
        positive = classes.index(config["metrics"]["positive_class"] or classes[1])
        curves.append((f"fold {index}", saved["labels"] == positive, saved["probabilities"][:, positive]))
    plots.cross_validation_roc(curves, out_dir / "plots" / "roc_per_fold.png",
                               title=f"{config['name']}: ROC per test fold")
