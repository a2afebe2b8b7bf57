"""The ``coughclf`` command line: one subcommand per module in :mod:`coughclf.commands`."""

import argparse
import contextlib
import errno
import os
import sys
import tempfile
import traceback

from coughclf import __version__, commands, console
from coughclf.errors import CoughclfError
from coughclf.plugins import submodules

# The commands that run long enough to print progress, which --quiet silences.
QUIET_COMMANDS = ("train", "cv", "tune", "evaluate", "prepare", "predict", "demo")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="coughclf",
        description="Audio classification and speech recognition models from five reports, in Keras 3.",
        epilog="Run 'coughclf COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"coughclf {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks on errors, and the libraries' native logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in submodules(commands):
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=f"example:\n  {module.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show full tracebacks on errors, and the libraries' native logs")
        if name in QUIET_COMMANDS:
            sub.add_argument("--quiet", action="store_true",
                             help="no progress output (bars, epochs, notes): results and errors only")
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def import_tensorflow_quietly():
    """Import TensorFlow with its native start-up chatter hidden.

    TensorFlow >= 2.20 logs through absl before absl is initialised, which ignores
    ``TF_CPP_MIN_LOG_LEVEL`` (oneDNN notices, "could not find cuda drivers"). The import's
    stderr is captured at the file-descriptor level and shown only if the import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except Exception:
            os.dup2(saved_fd, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    console.set_quiet(getattr(args, "quiet", False))
    try:
        with (console.warnings_as_lines(args.command),
              contextlib.nullcontext() if args.debug else console.native_logs_filtered(),
              console.stdout_for_results()):
            if getattr(sys.modules[args._run.__module__], "NEEDS_TENSORFLOW", True) and not args.debug:
                import_tensorflow_quietly()
            return args._run(args) or 0
    except CoughclfError as error:
        if args.debug:
            traceback.print_exc()
        print(f"coughclf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        if error.errno != errno.ENOSPC:
            return _unexpected(args, error)
        from coughclf.files import disk_full_error

        if args.debug:
            traceback.print_exc()
        print(f"coughclf {args.command}: error: {disk_full_error(error.filename or 'a file')}", file=sys.stderr)
        return 2
    except Warning as error:  # one of console.WRONG_RESULT_WARNINGS
        if args.debug:
            traceback.print_exc()
        print(f"coughclf {args.command}: error: {error} (a library warning that means a wrong result)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coughclf {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        return _unexpected(args, error)


def _unexpected(args, error):
    """An unexpected failure still gets one readable line."""
    if args.debug:
        traceback.print_exc()
    print(f"coughclf {args.command}: unexpected error: {type(error).__name__}: {error} "
          "(run again with --debug for the traceback and report it)", file=sys.stderr)
    return 1
