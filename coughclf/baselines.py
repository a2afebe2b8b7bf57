"""Classical baselines on exactly the splits or folds of an experiment config: the anchor for every result.

A network's accuracy means little until it is set beside what a classical method gets on the
same clips. For any classification config (binary or multi-class) this fits, on each fold's
training clips (the training and validation parts: a baseline has no epochs to choose):

- **MFCC statistics**: mean and standard deviation over time of 20 MFCCs of the whole clip
  (librosa defaults at the cache's sample rate), 40 numbers;
- **log-mel statistics**: mean and standard deviation over time of a 64-band log-mel
  spectrogram (dB), 128 numbers;

each standardised (``StandardScaler``, fitted on the training clips) into scikit-learn's
L2 **logistic regression** and an **RBF SVM** (``C = 1``, ``gamma = "scale"``, probabilities by
Platt scaling fitted on 5-fold cross-validated decisions): four baselines. A binary config with ``metrics.group_by`` also gets the
**metadata prior**: each test clip scores the positive rate, in the training clips, of clips
with its value of ``group_by[0]`` (e.g. ``meta_source``): how well the recording channel
alone predicts the label (within one source it is 0.5 by construction).

Splits are the config's own: ``split.method = "kfold"`` or ``"fold"`` gives the folds of
``coughclf cv`` (:func:`coughclf.cv.fold_splits`; a CV folder's ``folds.json`` when given),
any other method the one split of ``coughclf train`` (its test part). Metrics are those of
``coughclf evaluate`` (:func:`coughclf.classification.clip_metrics`: accuracy, macro AUC,
balanced accuracy, macro F1, per class, bootstrap intervals) per test fold, and within each
value of every ``metrics.group_by`` column, with mean ± sample std over folds.

Run::

    coughclf baseline experiments/esc/esc10.toml            # a table
    coughclf baseline experiments/cough/cough_crnn_covid19.toml --json --out saved_models/covid-baseline
    coughclf cv experiments/esc/esc10.toml --baseline       # the model's row with these beside it
"""

import sys
from pathlib import Path

import numpy as np

from coughclf import metrics as metric_functions
from coughclf.errors import CoughclfError

N_MFCC = 20
N_MELS = 64
FEATURES = ("mfcc", "logmel")
CLASSIFIERS = ("logistic_regression", "svm")
# The baselines' names, in the order they are reported.
BASELINES = tuple(f"{features}_{classifier}" for features in FEATURES for classifier in CLASSIFIERS)
PRIOR = "metadata_prior"
# Folds of the SVM's probability calibration (fewer when a class has fewer training clips).
CALIBRATION_FOLDS = 5
# Columns of the printed table (summary metrics of every baseline and of a model).
TABLE_METRICS = ("accuracy", "auc", "balanced_accuracy", "macro_f1")


def metadata_prior_scores(train_values, train_labels, test_values):
    """Positive rate among training clips with each test clip's value (unseen value: overall rate)."""
    train_values, train_labels = np.asarray(train_values), np.asarray(train_labels, dtype=float)
    overall = float(train_labels.mean())
    rates = {value: float(train_labels[train_values == value].mean()) for value in set(train_values)}
    return np.array([rates.get(value, overall) for value in test_values])


def mfcc_statistics(waveform, sample_rate, n_mfcc=N_MFCC):
    """``[2 * n_mfcc]``: mean then standard deviation over frames of the clip's MFCCs."""
    import librosa

    coefficients = librosa.feature.mfcc(y=np.asarray(waveform, dtype=np.float32), sr=sample_rate, n_mfcc=n_mfcc)
    return np.concatenate([coefficients.mean(axis=1), coefficients.std(axis=1)])


def log_mel_statistics(waveform, sample_rate, n_mels=N_MELS):
    """``[2 * n_mels]``: mean then standard deviation over frames of the clip's log-mel bands (dB, ref 1)."""
    import librosa

    power = librosa.feature.melspectrogram(y=np.asarray(waveform, dtype=np.float32), sr=sample_rate, n_mels=n_mels)
    bands = librosa.power_to_db(power, ref=1.0)
    return np.concatenate([bands.mean(axis=1), bands.std(axis=1)])


FEATURE_FUNCTIONS = {"mfcc": mfcc_statistics, "logmel": log_mel_statistics}


def classifier_probabilities(classifier, train_features, train_labels, test_features, num_classes, seed=0):
    """``[n_test, num_classes]`` probabilities of a standardised ``"logistic_regression"`` or ``"svm"``.

    Classes absent from the training clips get probability 0.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if classifier == "logistic_regression":
        estimator = LogisticRegression(max_iter=5000, random_state=seed)
    elif classifier == "svm":
        smallest = int(np.unique(train_labels, return_counts=True)[1].min())
        if smallest < 2:
            raise CoughclfError("the SVM baseline calibrates its probabilities by cross-validation and needs at "
                                "least 2 training clips of every class it sees; a split has fewer")
        estimator = CalibratedClassifierCV(SVC(kernel="rbf", C=1.0, gamma="scale"), ensemble=False,
                                           cv=min(CALIBRATION_FOLDS, smallest))
    else:
        raise CoughclfError(f"unknown baseline classifier {classifier!r}; use one of {CLASSIFIERS}")
    model = make_pipeline(StandardScaler(), estimator).fit(train_features, train_labels)
    probabilities = np.zeros((len(test_features), num_classes))
    probabilities[:, model.classes_] = model.predict_proba(test_features)
    return probabilities


def clip_waveforms(cache):
    """``{clip id: float32 waveform}`` of every clip in a prepared cache."""
    import tensorflow as tf
    from tqdm import tqdm

    from coughclf.cache import parse_example

    waveforms = {}
    records = tf.data.TFRecordDataset(cache.shard_paths).map(parse_example)
    for record in tqdm(records.as_numpy_iterator(), total=len(cache.manifest), desc="read clips", unit="clip"):
        waveforms[record["id"].decode()] = record["audio"]
    return waveforms


def config_splits(config, cache):
    """The splits a config trains on: cv's folds (k-fold or predefined) or train's one split."""
    from coughclf.inputs import split_clips

    if config["split"]["method"] in ("kfold", "fold"):
        from coughclf.cv import fold_splits

        return fold_splits(config, cache)
    return [split_clips(config, cache)]


def run_baselines(config, splits=None, out_dir=None):
    """Every baseline on every split of ``config``; returns (and writes ``out_dir/baseline.json``) the results.

    ``splits``: ``[{"train", "validation", "test"}, ...]`` clip ids (a CV folder's folds.json);
    default :func:`config_splits`. Returns ``{"config", "cache", "folds", "baselines": {name:
    {"per_fold": [metrics], "summary": {metric: {mean, std, values}}}}}``.
    """
    from tqdm import tqdm

    from coughclf.classification import clip_metrics
    from coughclf.files import write_json
    from coughclf.inputs import open_data

    if config["task"] == "ctc":
        raise CoughclfError(f"{config.source}: baselines classify clips; this config is a speech (ctc) task")
    cache = open_data(config)
    splits = splits if splits is not None else config_splits(config, cache)
    classes, rows = cache.classes, {row["id"]: row for row in cache.manifest}
    used = sorted({clip_id for split in splits for part in ("train", "validation", "test") for clip_id in split[part]})
    waveforms = clip_waveforms(cache)
    features = {name: {clip_id: function(waveforms[clip_id], cache.sample_rate)
                       for clip_id in tqdm(used, desc=f"{name} statistics", unit="clip")}
                for name, function in FEATURE_FUNCTIONS.items()}
    group_by = config["metrics"]["group_by"]
    prior_column = group_by[0] if group_by and len(classes) == 2 else None
    names = [*BASELINES, *([PRIOR] if prior_column else [])]
    per_fold = {name: [] for name in names}
    for split in splits:
        train_ids, test_ids = [*split["train"], *split["validation"]], list(split["test"])
        train_labels = np.array([int(rows[i]["label_index"]) for i in train_ids])
        test_labels = np.array([int(rows[i]["label_index"]) for i in test_ids])
        for name in names:
            if name == PRIOR:
                positive = classes.index(config["metrics"]["positive_class"] or classes[1])
                scores = metadata_prior_scores([rows[i][prior_column] for i in train_ids],
                                               train_labels == positive, [rows[i][prior_column] for i in test_ids])
                probabilities = np.zeros((len(test_ids), 2))
                probabilities[:, positive], probabilities[:, 1 - positive] = scores, 1 - scores
            else:
                feature_name, classifier = name.split("_", 1)
                table = features[feature_name]
                probabilities = classifier_probabilities(
                    classifier, np.stack([table[i] for i in train_ids]), train_labels,
                    np.stack([table[i] for i in test_ids]), len(classes), seed=config["train"]["seed"])
            per_fold[name].append({"clips": len(test_ids), **clip_metrics(
                config, test_labels, probabilities, classes, [rows[i] for i in test_ids])})
    report = {"config": config.source, "cache": str(cache.root), "folds": len(splits),
              "trained_on": "each split's training and validation clips", "prior_column": prior_column,
              "std": "sample standard deviation over folds (ddof=1)",
              "baselines": {name: {"per_fold": results, "summary": metric_functions.summarize_folds(results)}
                            for name, results in per_fold.items()}}
    if out_dir:
        write_json(Path(out_dir) / "baseline.json", report)
    return report


def table_rows(report, model_summary=None, model_name="model"):
    """Lines of a table: one row per baseline (and the model's first, from a cv summary's
    ``metrics``), mean ± std of :data:`TABLE_METRICS`, then the same within each group_by value."""
    entries = ([(model_name, model_summary)] if model_summary else []) + [
        (name, entry["summary"]) for name, entry in report["baselines"].items()]
    width = max(len(name) for name, _ in entries)
    column = max(15, *(len(metric) for metric in TABLE_METRICS))  # "0.1234 ± 0.0123" is 15 wide

    def cells(summary, prefix=""):
        values = []
        for metric in TABLE_METRICS:
            entry = summary.get(prefix + metric)
            values.append("n/a".center(column) if entry is None or entry["mean"] is None or np.isnan(entry["mean"])
                          else f"{entry['mean']:.4f} ± {entry['std']:.4f}".center(column))
        return "  ".join(values)

    lines = [f"{'':{width}}  " + "  ".join(f"{metric:^{column}}" for metric in TABLE_METRICS)]
    lines += [f"{name:{width}}  {cells(summary)}" for name, summary in entries]
    group_prefixes = sorted({name.rsplit(".", 1)[0] + "." for _, summary in entries for name in summary
                             if name.startswith("groups.") and name.endswith(".accuracy")})
    for prefix in group_prefixes:
        lines.append(f"within {prefix[len('groups.'):-1].replace('.', ' = ', 1)}:")
        lines += [f"{name:{width}}  {cells(summary, prefix)}" for name, summary in entries]
    return lines


def main(argv=None):
    """``python -m coughclf.baselines CONFIG``: the same as ``coughclf baseline CONFIG``."""
    from coughclf.cli import main as cli_main

    return cli_main(["baseline", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
