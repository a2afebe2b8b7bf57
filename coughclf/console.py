"""What coughclf prints while it works: results, progress (or none, with ``--quiet``) and the libraries' native logs.

Standard output is for results, so that ``coughclf ... > out.txt`` or ``| jq`` gets data
only: while a command runs, :func:`stdout_for_results` points standard output (Python's
``sys.stdout`` and file descriptor 1) at standard error, where progress notes, Keras' epoch
lines, warnings, tqdm bars and anything a library prints go, and :func:`result` writes to
the real standard output. A command prints its results through :func:`result` and nothing
else; with ``--json`` that is exactly one JSON document.

Progress is decided here, once for every command: :func:`fit_verbose` gives Keras' ``fit``
a progress bar on a terminal, one line per epoch otherwise (a log file or a pipe would
collect every redraw of the bar), and nothing under ``--quiet``; :func:`report` prints a
progress note unless quiet. Results and errors are always printed.

TensorFlow's native code logs through absl/glog straight to file descriptor 2, ignoring
``TF_CPP_MIN_LOG_LEVEL`` before absl is initialised (oneDNN notices, "failed call to
cuInit" on machines without a GPU), in this process and in its worker processes alike.
:func:`native_logs_filtered` drops those lines from descriptor 2 while a command runs
(the CLI keeps them with ``--debug``).

Python warnings are shown as one line each, ``coughclf COMMAND: warning: ...``, not Python's two
lines with a source path (:func:`warnings_as_lines`); those that mean a wrong result
(:data:`WRONG_RESULT_WARNINGS`) stop the command as errors.
"""

import contextlib
import io
import os
import re
import sys
import threading
import warnings

_quiet = False
# Where results go while a command runs (the real standard output); None: sys.stdout.
_results = None

# A glog line ("I0000 00:00:1795681096.033653    1433 port.cc:153] ..."), absl's notice before
# its initialisation, and the two lines of TensorFlow's CPU-instructions notice.
_NATIVE_LOG = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] |WARNING: All log messages before "
                         rb"absl::InitializeLog\(\) is called|To enable the following instructions: )")
_NATIVE_LOG_START = re.compile(rb"^(?:[IWEF]\d|WARNING: All|To enable)")
# Library warnings whose result is wrong, not merely unusual: raised as errors. librosa's means a mel band
# that is silent whatever the audio ([frontend] is checked for it at load; this catches any other way in).
WRONG_RESULT_WARNINGS = ("Empty filters detected",)


def set_quiet(quiet):
    """Print progress (False, the default) or only results and errors (True, ``--quiet``)."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet():
    return _quiet


def report(*parts):
    """Print a progress note (``print``'s arguments) unless quiet."""
    if not _quiet:
        print(*parts, flush=True)


def result(*parts, **print_options):
    """Print a result (``print``'s arguments) on standard output, even inside :func:`stdout_for_results`."""
    print(*parts, file=_results or sys.stdout, flush=True, **print_options)


@contextlib.contextmanager
def stdout_for_results():
    """Run the body with standard output kept for :func:`result`; anything else printed there goes to
    standard error (see the module docstring).

    When ``sys.stdout`` is file descriptor 1, the descriptor is redirected too, so that native code
    and child processes printing there do not mix into the results either.
    """
    global _results
    original = sys.stdout
    original.flush()
    results, saved = original, _duplicate_stdout(original)
    if saved is not None:
        results = io.TextIOWrapper(io.FileIO(saved, "w"), encoding=original.encoding, errors=original.errors,
                                   line_buffering=True)
        sys.stderr.flush()
        os.dup2(2, 1)
    sys.stdout, _results = sys.stderr, results
    try:
        yield
    finally:
        sys.stdout, _results = original, None
        if saved is not None:
            sys.stderr.flush()
            os.dup2(saved, 1)
            with contextlib.suppress(BrokenPipeError):  # the reader has gone: the CLI says nothing more
                results.close()


def _duplicate_stdout(stream):
    """A new descriptor of the real standard output if ``stream`` writes to descriptor 1, else None."""
    try:
        return os.dup(1) if stream.fileno() == 1 else None
    except (AttributeError, ValueError, OSError):  # a StringIO, pytest's capture: no descriptor to move
        return None


def fit_verbose(preferred=None):
    """Keras ``verbose`` for ``fit``: 0 when quiet, else ``preferred`` if given, else a progress bar
    (1) on a terminal and one line per epoch (2) anywhere else."""
    if _quiet:
        return 0
    if preferred is not None:
        return preferred
    return 1 if sys.stdout.isatty() else 2


def is_native_log(line):
    """Whether ``line`` (bytes) is a line of TensorFlow's native logging."""
    return bool(_NATIVE_LOG.match(line))


@contextlib.contextmanager
def native_logs_filtered():
    """Run the body with native log lines removed from file descriptor 2 (see the module docstring).

    Everything else written to descriptor 2 passes through as it comes, partial lines (a
    progress bar's redraws) included.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon, an embedding host): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending = b""
        while chunk := os.read(read_end, 65536):
            # Lines end at a newline, or at a carriage return (a progress bar's redraw).
            *lines, pending = re.split(rb"(?<=[\r\n])", pending + chunk)
            kept = b"".join(line for line in lines if not is_native_log(line))
            if pending and not _NATIVE_LOG_START.match(pending):
                kept, pending = kept + pending, b""
            if kept:
                os.write(saved, kept)
        if pending and not is_native_log(pending):
            os.write(saved, pending)
        os.close(read_end)

    thread = threading.Thread(target=pump, name="native-log-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer in this process closes: the pump reads to its end
        thread.join(timeout=10)
        os.close(saved)


@contextlib.contextmanager
def warnings_as_lines(command):
    """Run the body with each warning shown as one line on stderr, ``coughclf COMMAND: warning: ...``,
    and those starting with one of :data:`WRONG_RESULT_WARNINGS` raised as errors."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"coughclf {command}: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        for text in WRONG_RESULT_WARNINGS:
            warnings.filterwarnings("error", message=re.escape(text))
        warnings.showwarning = show
        yield
