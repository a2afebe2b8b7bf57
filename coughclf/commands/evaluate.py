"""``coughclf evaluate RUN``: metrics and plots of a trained run."""

from coughclf.console import result
from coughclf.errors import CoughclfError
from coughclf.inputs import SPLITS

HELP = "evaluate a run's best model: accuracy, AUC with bootstrap CIs, per-class scores, plots"
EXAMPLE = ("coughclf evaluate saved_models/kws_cnn-20250101-120000 --split test\n"
           "  coughclf evaluate RUN --data prepared/other-dataset --split all --json\n"
           "  coughclf evaluate RUN --data prepared/cohort --split all --map-labels healthy=negative --group-by group\n"
           "  coughclf evaluate saved_models/esc10_yamnet-cv-X saved_models/esc10-cv-Y  (their ensemble, fold by fold)")


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN", nargs="+",
                        help="run folder written by 'coughclf train'; or several CV folders of different models "
                             "cross-validated on the same folds: their ensemble, each test fold scored by the "
                             "models that held it out (a CV folder of its own, see --out)")
    parser.add_argument("--data", metavar="CACHE", help="evaluate on this prepared cache instead of the run's")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="which clips: a split of the run, or all clips of the cache (default: test)")
    parser.add_argument("--map-labels", metavar="OLD=NEW,...", type=label_map,
                        help="classes of --data named otherwise, as the model's, e.g. covid=positive,healthy=negative")
    parser.add_argument("--group-by", metavar="COLUMN", action="append",
                        help="metrics per value of this manifest column too, e.g. --group-by group (per patient) "
                             "or meta_source; repeatable; replaces the config's metrics.group_by")
    parser.add_argument("--json", action="store_true", help="print every metric as JSON")
    parser.add_argument("--out", metavar="DIR", help="with several CV folders: the ensemble's folder "
                                                     "(default saved_models/ensemble-NAMES-TIMESTAMP)")


def label_map(text):
    """``"a=b,c=d"`` -> ``{"a": "b", "c": "d"}``."""
    import argparse

    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    if not pairs or any(not old.strip() or not sep or not new.strip() for old, sep, new in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: write OLD=NEW pairs separated by commas, e.g. covid=positive")
    return {old.strip(): new.strip() for old, _, new in pairs}


def run(args):
    import json

    from coughclf.evaluate import evaluate, summary_lines

    if len(args.run_dir) > 1:
        return run_ensemble(args)
    if args.out:
        raise CoughclfError("--out names the folder of an ensemble of several CV folders; give them all")
    options = {name: value for name, value in (("label_map", args.map_labels), ("group_by", args.group_by)) if value}
    results = evaluate(args.run_dir[0], data=args.data, split=args.split, **options)
    if args.json:  # nothing else on stdout, so that it parses
        result(json.dumps(results, indent=2))
    else:
        result("\n".join(summary_lines(results)))


def run_ensemble(args):
    """Several CV folders: their ensemble evaluated fold by fold (:func:`coughclf.ensemble.evaluate_model_ensemble`)."""
    import json

    from coughclf.model_ensemble import evaluate_model_ensemble

    if args.data or args.split != "test" or args.map_labels:
        raise CoughclfError("an ensemble of CV folders is evaluated on its own test folds; --data, --split and "
                            "--map-labels apply to its folder afterwards: coughclf evaluate ENSEMBLE_DIR --data "
                            "CACHE --split all")
    summary = evaluate_model_ensemble(args.run_dir, args.out, group_by=args.group_by)
    if args.json:
        result(json.dumps(summary, indent=2))
        return
    result(f"ensemble of {len(args.run_dir)} CV folders, {summary['folds']} folds, summary in "
           f"{summary['out_dir']}/summary.json")
    for name, entry in summary["metrics"].items():
        if "." not in name and name != "n":
            values = " / ".join(f"{value:.4f}" for value in entry["values"])
            result(f"  {name:<20} {entry['mean']:.4f} ± {entry['std']:.4f}  (per fold {values})")
