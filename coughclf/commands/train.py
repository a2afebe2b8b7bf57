"""``coughclf train CONFIG``: train one experiment into a run folder."""

HELP = "train an experiment config: best model, history, metrics and plots in a run folder"
EXAMPLE = ("coughclf train experiments/kws_cnn.toml --set train.epochs=5 --set optimizer.lr=1e-4\n"
           "  coughclf train experiments/kws_cnn.toml --run-dir saved_models/kws  # again: resumes a killed run\n"
           "  TF_CONFIG='{\"cluster\": {\"worker\": [\"a:2222\", \"b:2222\"]}, \"task\": {\"type\": \"worker\", "
           "\"index\": 0}}' coughclf train CONFIG --strategy multiworker")


def add_config_arguments(parser, strategy=True):
    """CONFIG, --set and (``strategy``) --strategy: shared by train, cv, baseline and (through the tuner) tune."""
    parser.add_argument("config", metavar="CONFIG", help="experiment TOML file (see experiments/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.epochs=5 --set data.cache=prepared/fsdd "
                             "(repeatable; values are read as TOML)")
    if not strategy:
        return
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                        help="tf.distribute strategy: mirrored = all local GPUs, multiworker = the cluster in "
                             "TF_CONFIG (run the same command on every machine); the batch size is global")


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument("--run-dir", metavar="DIR",
                        help="run folder (default saved_models/NAME-TIMESTAMP); an unfinished run there resumes")


def run(args):
    from coughclf.config import load_config
    from coughclf.runs import make_strategy
    from coughclf.train import train

    config = load_config(args.config, args.overrides)
    strategy = make_strategy(args.strategy)  # before any other TensorFlow work (multi-worker needs that)
    run_dir = train(config, args.run_dir, strategy)
    print(f"run folder: {run_dir}")
