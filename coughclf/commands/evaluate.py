"""``coughclf evaluate RUN``: metrics and plots of a trained run."""

from coughclf.inputs import SPLITS

HELP = "evaluate a run's best model: accuracy, AUC with bootstrap CIs, per-class scores, plots"
EXAMPLE = ("coughclf evaluate saved_models/kws_cnn-20250101-120000 --split test\n"
           "  coughclf evaluate RUN --data prepared/other-dataset --split all --json")


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN", help="run folder written by 'coughclf train'")
    parser.add_argument("--data", metavar="CACHE", help="evaluate on this prepared cache instead of the run's")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="which clips: a split of the run, or all clips of the cache (default: test)")
    parser.add_argument("--json", action="store_true", help="print every metric as JSON")


def run(args):
    import json

    from coughclf.evaluate import evaluate, summary_lines

    results = evaluate(args.run_dir, data=args.data, split=args.split)
    if args.json:  # nothing else on stdout, so that it parses
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(summary_lines(results)))
