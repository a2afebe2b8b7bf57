"""``coughclf tune CONFIG``: hyperparameter search with KerasTuner, each trial cross-validated."""

from coughclf.commands.train import add_config_arguments, load_config_of
from coughclf.console import result

HELP = "search hyperparameters ([tune] table: random, bayesian or hyperband; objective averaged over CV folds)"
EXAMPLE = ("coughclf tune experiments/kws/tune_kws_fsdd.toml --directory saved_models/kws-tune\n"
           "  (run it again with the same --directory to continue a stopped search)\n"
           "  coughclf tune CONFIG --chief --oracle 10.0.0.1:8000            # machine 1: serves the trials\n"
           "  coughclf tune CONFIG --worker --oracle 10.0.0.1:8000 --tuner-id gpu1   # each worker machine")


def add_arguments(parser):
    add_config_arguments(parser)
    parser.add_argument("--directory", metavar="DIR",
                        help="search folder (default saved_models/NAME-tune); an unfinished search there continues")
    parser.add_argument("--overwrite", action="store_true", help="delete the folder's previous search and start over")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true",
                      help="distributed search: serve the trials to workers at --oracle and write the results")
    role.add_argument("--worker", action="store_true",
                      help="distributed search: run trials handed out by the chief at --oracle")
    parser.add_argument("--oracle", metavar="HOST:PORT",
                        help="the chief's address (default: KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT)")
    parser.add_argument("--tuner-id", metavar="ID",
                        help="this worker's id, unique among workers (default worker-HOST-PID); a worker "
                             "restarted with the same id continues the trial it was running")
    parser.add_argument("--json", action="store_true", help="print the best trial (best.json) as JSON")


def set_role(args, environ):
    """Write KerasTuner's distribution variables into ``environ`` for --chief / --worker."""
    import os
    import socket

    from coughclf.errors import CoughclfError

    if not (args.chief or args.worker):
        if args.oracle or args.tuner_id:
            raise CoughclfError("--oracle and --tuner-id are for a distributed search; add --chief or --worker")
        return
    if args.oracle:
        host, sep, port = args.oracle.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise CoughclfError(f"--oracle {args.oracle!r}: write it as HOST:PORT, e.g. --oracle 10.0.0.1:8000")
        environ["KERASTUNER_ORACLE_IP"], environ["KERASTUNER_ORACLE_PORT"] = host, port
    if not {"KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"} <= set(environ):
        raise CoughclfError("a distributed search needs the chief's address: give --oracle HOST:PORT (or set "
                            "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT)")
    if args.chief:
        environ["KERASTUNER_TUNER_ID"] = "chief"
        return
    tuner_id = args.tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
    if "chief" in tuner_id:
        raise CoughclfError(f"--tuner-id {tuner_id!r}: a worker id must not contain 'chief'")
    environ["KERASTUNER_TUNER_ID"] = tuner_id


def run(args):
    import json
    import os
    import sys

    from coughclf.runs import make_strategy
    from coughclf.tune import tune

    set_role(args, os.environ)
    config = load_config_of(args)
    strategy = make_strategy(args.strategy)
    best = tune(config, args.directory, strategy, overwrite=args.overwrite)
    if best is None:
        if not args.worker:
            print("coughclf tune: no trial completed; see executions.log and the trials' trial.json for the "
                  "errors", file=sys.stderr)
        return None if args.worker else 1
    if args.json:
        result(json.dumps(best, indent=2))
        return None
    result(f"best trial {best['trial']}: {best['objective']} = {best['value']:.4f} ± {best['std']:.4f} over "
          f"{best['folds']} fold(s); {best['completed']}/{best['trials']} trials completed")
    for name, value in best["hyperparameters"].items():
        result(f"  {name} = {value}")
    if "default" in best:
        default = best["default"]
        result(f"default config: {best['objective']} = {default['value']:.4f} ± {default['std']:.4f} "
              f"(tuned is better by {best['improvement']:+.4f})")
        for metric, tuned in best["test"].items():
            before = default["test"].get(metric)
            if before:
                result(f"  test {metric:<18} default {before['mean']:.4f} ± {before['std']:.4f}   "
                      f"tuned {tuned['mean']:.4f} ± {tuned['std']:.4f}")
    result(f"best config: {best['config']}  (coughclf train / coughclf cv accept it as is)")
