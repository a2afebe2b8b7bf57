"""``coughclf evaluate RUN``: metrics and plots of a trained run."""

from coughclf.console import result
from coughclf.inputs import SPLITS

HELP = "evaluate a run's best model: accuracy, AUC with bootstrap CIs, per-class scores, plots"
EXAMPLE = ("coughclf evaluate saved_models/kws_cnn-20250101-120000 --split test\n"
           "  coughclf evaluate RUN --data prepared/other-dataset --split all --json\n"
           "  coughclf evaluate RUN --data prepared/cohort --split all --map-labels healthy=negative --group-by group")


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN", help="run folder written by 'coughclf train'")
    parser.add_argument("--data", metavar="CACHE", help="evaluate on this prepared cache instead of the run's")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="which clips: a split of the run, or all clips of the cache (default: test)")
    parser.add_argument("--map-labels", metavar="OLD=NEW,...", type=label_map,
                        help="classes of --data named otherwise, as the model's, e.g. covid=positive,healthy=negative")
    parser.add_argument("--group-by", metavar="COLUMN", action="append",
                        help="metrics per value of this manifest column too, e.g. --group-by group (per patient) "
                             "or meta_source; repeatable; replaces the config's metrics.group_by")
    parser.add_argument("--json", action="store_true", help="print every metric as JSON")


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

    options = {name: value for name, value in (("label_map", args.map_labels), ("group_by", args.group_by)) if value}
    results = evaluate(args.run_dir, data=args.data, split=args.split, **options)
    if args.json:  # nothing else on stdout, so that it parses
        result(json.dumps(results, indent=2))
    else:
        result("\n".join(summary_lines(results)))
