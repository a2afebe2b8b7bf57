import json

from coughclf import bench
from coughclf.plugins import submodules

HELP = "measure speed and memory: the input pipeline, prepare, a training step, TFLite latency"
EXAMPLE = "coughclf bench pipeline --json"


def add_arguments(parser):
    subparsers = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module in submodules(bench):
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        sub.add_argument("--json", action="store_true", help="print the results as JSON")
        module.add_arguments(sub)
        sub.set_defaults(_benchmark=module.run)


def _print_summary(results, indent=0):
    for key, value in results.items():
        if isinstance(value, dict):
            print(" " * indent + f"{key}:")
            _print_summary(value, indent + 2)
        else:
            print(" " * indent + f"{key}: {value}")


def run(args):
    results = args._benchmark(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_summary(results)
