"""The command line: discoverable subcommands, examples in every --help, one-line errors."""

import subprocess
import sys

import pytest

from coughclf import cli
from coughclf.console import result

EXPECTED_COMMANDS = {"demo", "datasets", "prepare", "info", "download", "models", "train", "cv", "evaluate",
                     "tune", "export", "predict", "bench"}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "coughclf", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    listed = {name for name in EXPECTED_COMMANDS if f"    {name}" in result.stdout}
    assert listed == EXPECTED_COMMANDS


def test_every_subcommand_help_has_an_example(capsys):
    parser = cli.build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    assert EXPECTED_COMMANDS <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        assert "example:" in text and f"coughclf {name}" in text.split("example:")[1], name


def test_user_error_is_one_line_naming_the_file_with_nonzero_exit(tmp_path):
    missing = tmp_path / "no_cache_here"
    result = run_cli("info", str(missing))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0] and "coughclf prepare" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "info", str(tmp_path / "nothing"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_unknown_dataset_error_lists_the_choices(capsys):
    assert cli.main(["datasets", "no_such_dataset"]) != 0
    error = capsys.readouterr().err
    assert "no_such_dataset" in error and "fsdd" in error


@pytest.mark.parametrize("failure", ["import", "ok"])
def test_quiet_tensorflow_import_restores_stderr(failure, capfd, monkeypatch):
    """Whatever happens during the import, file descriptor 2 is usable afterwards."""
    if failure == "import":
        monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
        monkeypatch.setattr("builtins.__import__", _failing_import(__import__))
        with pytest.raises(ImportError):
            cli.import_tensorflow_quietly()
    else:
        cli.import_tensorflow_quietly()
    print("still here", file=sys.stderr)
    assert "still here" in capfd.readouterr().err


def _failing_import(real_import):
    def failing(name, *args, **kwargs):
        if name == "tensorflow":
            raise ImportError("simulated broken TensorFlow")
        return real_import(name, *args, **kwargs)

    return failing


def test_warnings_are_one_clean_line_and_those_of_a_wrong_result_are_errors(capsys, monkeypatch):
    """Issue 25: librosa's "Empty filters detected" came as a raw warning with a source path, and training went on."""
    import warnings

    import librosa

    from coughclf.commands import datasets

    def warns(args):
        warnings.warn("a library note\n  spread over two lines", UserWarning)
        result("finished")

    monkeypatch.setattr(datasets, "run", warns)
    assert cli.main(["datasets"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "coughclf datasets: warning: a library note spread over two lines\n"
    assert captured.out == "finished\n"

    monkeypatch.setattr(datasets, "run", lambda args: librosa.filters.mel(sr=16000, n_fft=256, n_mels=128))
    assert cli.main(["datasets"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("coughclf datasets: error: Empty filters detected") and error.count("\n") == 1
    assert "a library warning that means a wrong result" in error
    with warnings.catch_warnings(record=True) as caught:  # the command's display and errors end with it
        warnings.simplefilter("always")
        librosa.filters.mel(sr=16000, n_fft=256, n_mels=128)
    assert "Empty filters" in str(caught[0].message)
