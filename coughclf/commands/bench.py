import json
import sys

from coughclf import bench
from coughclf.console import result
from coughclf.plugins import submodules

HELP = "measure speed and memory: a training step, the front end, the input pipeline, prepare, TFLite latency"
EXAMPLE = "KERAS_BACKEND=jax coughclf bench train --model cough_crnn --batch-size 256 --compare-torch --json"
# TensorFlow is imported by run() for the benchmarks that need it, so that `bench train` and
# `bench frontend` run on machines without it (see coughclf.bench.train).
NEEDS_TENSORFLOW = False


def benchmarks():
    """``(name, module)`` of every benchmark; modules named ``_*`` are their shared helpers."""
    return [(name, module) for name, module in submodules(bench) if not name.startswith("_")]


def add_arguments(parser):
    subparsers = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module in benchmarks():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        sub.add_argument("--json", action="store_true", help="print the results as JSON")
        module.add_arguments(sub)
        sub.set_defaults(_benchmark=module.run)


def _print_summary(results, indent=0):
    for key, value in results.items():
        if isinstance(value, dict):
            result(" " * indent + f"{key}:")
            _print_summary(value, indent + 2)
        else:
            result(" " * indent + f"{key}: {value}")


def run(args):
    if getattr(sys.modules[args._benchmark.__module__], "NEEDS_TENSORFLOW", True):
        from coughclf.cli import import_tensorflow_quietly

        import_tensorflow_quietly()
    results = args._benchmark(args)
    if args.json:
        result(json.dumps(results, indent=2))
    else:
        _print_summary(results)
