"""``coughclf baseline CONFIG``: the classical anchor of an experiment, on its own splits or folds."""

from coughclf.commands.train import add_config_arguments
from coughclf.console import result

HELP = ("classical baselines (MFCC and log-mel statistics, standardised, into logistic regression and an RBF "
        "SVM) on exactly the config's splits or folds, with the metrics of evaluate/cv")
EXAMPLE = ("coughclf baseline experiments/esc/esc10.toml\n"
           "  coughclf baseline experiments/cough/cough_crnn_covid19.toml --json --out saved_models/covid-baseline")


def add_arguments(parser):
    add_config_arguments(parser, training=False)
    parser.add_argument("--out", metavar="DIR", help="also write DIR/baseline.json (every fold's metrics)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args):
    import json

    from coughclf.baselines import run_baselines, table_rows
    from coughclf.config import load_config
    from coughclf.files import json_ready

    report = run_baselines(load_config(args.config, args.overrides), out_dir=args.out)
    if args.json:
        result(json.dumps(json_ready(report), indent=2))
        return
    result(f"{report['folds']} split(s) of {report['cache']}, mean ± std over test folds")
    result("\n".join(table_rows(report)))
