"""``coughclf evaluate``: the metrics of a run's best model on one split, by the run's task.

A classifier's run gets :func:`coughclf.classification.evaluate_run` (metrics.json,
predictions, plots), a CTC run :func:`coughclf.speech.evaluate_ctc` (CER/WER,
examples.csv); :mod:`coughclf.tasks` says which.
"""

from coughclf import tasks
from coughclf.runs import run_config


def evaluate(run_dir, data=None, split="test", *, make_plots=True):
    """Evaluate the run's ``best.keras`` on ``split`` of its cache (or of ``data``, another cache).

    Writes ``metrics.json`` (and, for a classifier, ``plots/``) in the run folder for its own
    test split, ``metrics-{split}[-{cache name}].json`` and ``plots-...`` otherwise, and the
    clip-level predictions beside them. Returns the results.

    Example::

        from coughclf.evaluate import evaluate
        results = evaluate("saved_models/kws_cnn-20250101-120000")
        print(results["accuracy"], results["auc_ci"])
    """
    config = run_config(run_dir)
    return tasks.get(config["task"]).evaluate(run_dir, data=data, split=split, make_plots=make_plots)
