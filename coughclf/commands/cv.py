"""``coughclf cv CONFIG``: cross-validate one experiment."""

from coughclf.commands.train import add_config_arguments, load_config_of
from coughclf.console import result

HELP = "cross-validate an experiment (k-fold or the dataset's folds): a run per fold and a mean ± std summary"
EXAMPLE = ("coughclf cv experiments/cough/cough_crnn_covid19.toml --set split.k=5 --run-dir saved_models/crnn-cv\n"
           "  (run it again with the same --run-dir to resume at the unfinished fold)")


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument("--run-dir", metavar="DIR",
                        help="CV folder (default saved_models/NAME-cv-TIMESTAMP); an unfinished one resumes")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--baseline", action="store_true",
                        help="also fit the classical baselines on the same folds (baseline.json in the CV folder) "
                             "and print their rows beside the model's")


def run(args):
    import json
    from pathlib import Path

    from coughclf.cv import cross_validate
    from coughclf.runs import make_strategy

    config = load_config_of(args)
    strategy = make_strategy(args.strategy)
    report = cross_validate(config, args.run_dir, strategy)
    if report is None:  # a non-chief worker: the chief writes the summary
        return
    baseline = None
    if args.baseline:
        from coughclf.baselines import run_baselines
        from coughclf.files import read_json

        out_dir = Path(report["out_dir"])
        baseline = run_baselines(config, splits=read_json(out_dir / "folds.json"), out_dir=out_dir)
    if args.json:
        from coughclf.files import json_ready

        result(json.dumps(json_ready({**report, "baseline": baseline}) if baseline else report, indent=2))
        return
    result(f"{report['folds']} folds, summary in {report['out_dir']}/summary.json")
    if baseline:
        from coughclf.baselines import table_rows

        result("\n".join(table_rows(baseline, report["metrics"], model_name=config["model"]["name"])))
        return
    for name, entry in report["metrics"].items():
        if "." not in name and name != "n":
            result(f"  {name:<20} {entry['mean']:.4f} ± {entry['std']:.4f}")
