"""``coughclf train CONFIG``: train one experiment into a run folder."""

from coughclf.config import SCHEMA, load_config
from coughclf.console import result
from coughclf.runs import STRATEGIES

HELP = "train an experiment config: best model, history, metrics and plots in a run folder"
EXAMPLE = ("coughclf train experiments/kws/kws_cnn.toml --set train.epochs=5 --set optimizer.lr=1e-4\n"
           "  coughclf train experiments/kws/kws_cnn.toml --run-dir saved_models/kws  # again: resumes a killed run\n"
           "  TF_CONFIG='{\"cluster\": {\"worker\": [\"a:2222\", \"b:2222\"]}, \"task\": {\"type\": \"worker\", "
           "\"index\": 0}}' coughclf train CONFIG --strategy multiworker")


def add_config_arguments(parser, training=True):
    """CONFIG and --set, then (``training``) --mixed-precision and --strategy: shared by train, cv, baseline
    and (through the tuner) tune."""
    parser.add_argument("config", metavar="CONFIG", help="experiment TOML file (see experiments/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.epochs=5 --set data.cache=prepared/fsdd "
                             "(repeatable; values are read as TOML)")
    if not training:  # the classical baseline trains no network
        return
    parser.add_argument("--mixed-precision", choices=SCHEMA["train"]["mixed_precision"].choices,
                        help="train in mixed precision (sets train.mixed_precision): mixed_bfloat16 on recent "
                             "GPUs and TPUs, mixed_float16 (with loss scaling) on older GPUs; off: float32")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: mirrored = all local GPUs, multiworker = the cluster in "
                             "TF_CONFIG (run the same command on every machine); data_parallel (KERAS_BACKEND="
                             "jax) = Keras' DataParallel over every device, several hosts through the "
                             "KERAS_DISTRIBUTION_* variables; the batch size is global")


def load_config_of(args):
    """The experiment config of CONFIG with the --set overrides and the flags that stand for keys."""
    overrides = list(args.overrides)
    if getattr(args, "mixed_precision", None):
        overrides.append(f'train.mixed_precision="{args.mixed_precision}"')
    return load_config(args.config, overrides)


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument("--run-dir", metavar="DIR",
                        help="run folder (default saved_models/NAME-TIMESTAMP); an unfinished run there resumes")
    parser.add_argument("--json", action="store_true",
                        help="print the run folder, training.json and the test metrics (metrics.json) as JSON")


def run_results(run_dir):
    """``{"run_dir", "training", "metrics"}``: what a finished run folder says of its training and its test
    split (None where the file is absent: a non-chief worker, or no test clips)."""
    from pathlib import Path

    from coughclf.files import read_json

    def recorded(name):
        path = Path(run_dir) / name
        return read_json(path) if path.exists() else None

    return {"run_dir": str(run_dir), "training": recorded("training.json"), "metrics": recorded("metrics.json")}


def run(args):
    import json

    from coughclf.evaluate import summary_lines
    from coughclf.runs import make_strategy
    from coughclf.train import train

    config = load_config_of(args)
    strategy = make_strategy(args.strategy)  # before any other TensorFlow work (multi-worker needs that)
    results = run_results(train(config, args.run_dir, strategy))
    if args.json:
        result(json.dumps(results, indent=2))
        return
    if results["metrics"]:
        result("\n".join(summary_lines(results["metrics"])))
    result(f"run folder: {results['run_dir']}")
