"""Classical baselines for a binary experiment, on the same group-aware folds as ``coughclf cv``.

Two baselines tell a reader what a deep model's AUC is worth on a confounded dataset
such as ``covid19_cough``, whose label goes with the recording channel:

- **metadata prior**: each test clip scores the positive rate, in the training folds,
  of clips with its value of a manifest column (``meta_source``). Its AUC is how well
  the channel alone predicts the label; within one source it is 0.5 by construction.
- **MFCC statistics + logistic regression**: the mean and standard deviation over time
  of 20 MFCCs of the whole clip (librosa defaults at the cache's sample rate), scaled,
  into scikit-learn's ``LogisticRegression``.

Folds are :func:`coughclf.splits.kfold` with the config's ``split.k`` and ``split.seed``:
the test folds of ``coughclf cv`` for the same config. A baseline trains on all of the
other folds (cv carves its validation part out of them). AUC is reported overall and
within each value of every [metrics].group_by column, per fold and as mean ± sample std.

Run::

    python -m coughclf.baselines experiments/cough_crnn_covid19.toml --out saved_models/results/covid_baselines
"""

import argparse
from pathlib import Path

import numpy as np

from coughclf import metrics as metric_functions
from coughclf.errors import CoughclfError

N_MFCC = 20


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


def logistic_regression_scores(train_features, train_labels, test_features, seed=0):
    """Positive-class probability of a standardised L2 logistic regression fitted on the training clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    model.fit(train_features, train_labels)
    return model.predict_proba(test_features)[:, 1]


def grouped_auc(labels, scores, group_values):
    """``{"auc": overall, "groups": {column: {value: auc}}}``; ``group_values`` maps column -> values."""
    result = {"auc": metric_functions.roc_auc(labels, scores), "groups": {}}
    for column, values in group_values.items():
        values = np.asarray(values)
        result["groups"][column] = {str(value): metric_functions.roc_auc(labels[values == value],
                                                                         scores[values == value])
                                    for value in sorted(set(values))}
    return result


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


def run_baselines(config, out_dir=None, column=None):
    """Both baselines on every fold of ``config``; returns (and writes to ``out_dir``) the results."""
    from tqdm import tqdm

    from coughclf import splits
    from coughclf.files import write_json
    from coughclf.inputs import open_data

    cache = open_data(config)
    if len(cache.classes) != 2:
        raise CoughclfError(f"{config.source}: baselines need a binary dataset; {cache.root} has classes "
                            f"{cache.classes}")
    group_by = config["metrics"]["group_by"]
    column = column or (group_by[0] if group_by else None)
    if column is None:
        raise CoughclfError(f"{config.source}: the metadata-prior baseline needs a column; set "
                            "metrics.group_by (e.g. ['meta_source']) or pass --column")
    positive = cache.classes.index(config["metrics"]["positive_class"] or cache.classes[1])
    rows = {row["id"]: row for row in cache.manifest}
    waveforms = clip_waveforms(cache)
    features = {clip_id: mfcc_statistics(audio, cache.sample_rate)
                for clip_id, audio in tqdm(waveforms.items(), desc="MFCC statistics", unit="clip")}
    folds = splits.kfold(cache.manifest, k=config["split"]["k"], seed=config["split"]["seed"])
    per_fold = {"metadata_prior": [], "mfcc_logistic_regression": []}
    for train_ids, test_ids in folds:
        train_labels = np.array([int(rows[i]["label_index"]) == positive for i in train_ids])
        test_labels = np.array([int(rows[i]["label_index"]) == positive for i in test_ids])
        groups = {name: [rows[i][name] for i in test_ids] for name in group_by}
        prior = metadata_prior_scores([rows[i][column] for i in train_ids], train_labels,
                                      [rows[i][column] for i in test_ids])
        mfcc = logistic_regression_scores(np.stack([features[i] for i in train_ids]), train_labels,
                                          np.stack([features[i] for i in test_ids]), seed=config["train"]["seed"])
        per_fold["metadata_prior"].append(grouped_auc(test_labels, prior, groups))
        per_fold["mfcc_logistic_regression"].append(grouped_auc(test_labels, mfcc, groups))
    results = {"config": config.source, "cache": str(cache.root), "folds": len(folds), "prior_column": column,
               "std": "sample standard deviation over folds (ddof=1)",
               "baselines": {name: {"per_fold": fold_results,
                                    "summary": metric_functions.summarize_folds(fold_results)}
                             for name, fold_results in per_fold.items()}}
    if out_dir:
        write_json(Path(out_dir) / "baselines.json", results)
    return results


def main(argv=None):
    from coughclf.config import load_config

    parser = argparse.ArgumentParser(prog="python -m coughclf.baselines", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="experiment TOML of a binary dataset (its data, split.k/seed, metrics)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--column", help="manifest column of the metadata prior (default: metrics.group_by[0])")
    parser.add_argument("--out", help="folder for baselines.json")
    args = parser.parse_args(argv)
    results = run_baselines(load_config(args.config, args.set), args.out, args.column)
    for name, entry in results["baselines"].items():
        for metric, stats in entry["summary"].items():
            print(f"{name:26s} {metric:40s} {stats['mean']:.3f} ± {stats['std']:.3f}")


if __name__ == "__main__":
    main()
