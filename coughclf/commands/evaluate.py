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


def _print_summary(results):
    print(f"{results['model']} on {results['clips']} {results['split']} clips of {results['cache']}")
    for name in ("accuracy", "auc", "balanced_accuracy", "macro_f1"):
        interval = results.get(f"{name}_ci")
        extra = f"  (95% CI {interval[0]:.3f}-{interval[1]:.3f})" if interval and None not in interval else ""
        value = results[name]
        print(f"  {name:<18} {'n/a' if value is None else f'{value:.4f}'}{extra}")
    if "sensitivity_at_specificity" in results:
        point = results["sensitivity_at_specificity"]
        print(f"  sensitivity {point['sensitivity']:.3f} at specificity {point['specificity']:.2f}")
    if "window_level" in results:
        print(f"  per window: accuracy {results['window_level']['accuracy']:.4f}, "
              f"AUC {results['window_level']['auc']:.4f}")
    for column, groups in results.get("groups", {}).items():
        for value, group in groups.items():
            auc = "n/a" if group["auc"] is None else f"{group['auc']:.4f}"
            print(f"  {column}={value}: n {group['n']}, accuracy {group['accuracy']:.4f}, AUC {auc}")


def run(args):
    import json

    from coughclf.evaluate import evaluate

    results = evaluate(args.run_dir, data=args.data, split=args.split)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_summary(results)
