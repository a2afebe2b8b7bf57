"""Standard output is for results: every ``--json`` prints exactly one JSON document there, and
progress, epoch lines and warnings go to standard error (issue 23, item 2)."""

import argparse
import json
import subprocess
import sys

import pytest

from conftest import tone, write_audio
from coughclf import cli
from train_data import write_config, write_tone_cache

# How each command that has --json runs on the tiny data of the `workspace` fixture. A new command
# (or benchmark) with --json fails test_every_json_command_is_run until it is added here.
JSON_COMMANDS = {
    "baseline": lambda w: ["baseline", w["config"]],
    "bench frontend": lambda w: ["bench", "frontend", "--batch-sizes", "2", "--seconds", "0.25", "--repeats", "1",
                                 "--warmup", "1", "--librosa-clips", "1"],
    "bench pipeline": lambda w: ["bench", "pipeline", "--clips", "8", "--seconds", "0.5", "--batch-size", "4",
                                 "--repeats", "1", "--no-fit"],
    "bench prepare": lambda w: ["bench", "prepare", "--dataset", "folder", "--data-dir", w["folder"],
                                "--multiples", "1", "--workers", "1"],
    "bench tflite": lambda w: ["bench", "tflite", "--models", "kws_cnn", "--repeats", "1", "--warmup", "1",
                               "--quantize", "float32", "--option", "clip_seconds=0.5"],
    "bench train": lambda w: ["bench", "train", "--model", "cough_small_cnn", "--batch-size", "2", "--steps", "1",
                              "--warmup", "1"],
    "cv": lambda w: ["cv", w["config"], "--set", 'split.method="kfold"', "--set", "split.k=2",
                     "--run-dir", w["root"] + "/cv"],
    "datasets": lambda w: ["datasets", "fsdd"],
    "evaluate": lambda w: ["evaluate", w["run"]],
    "info": lambda w: ["info", w["cache"], "--verify"],
    "models": lambda w: ["models"],
    "predict": lambda w: ["predict", w["tflite"], w["clip"]],
    "train": lambda w: ["train", w["config"], "--run-dir", w["root"] + "/run"],  # run by `workspace`
    "tune": lambda w: ["tune", w["config"], "--directory", w["root"] + "/search",
                       "--set", "tune.max_trials=1", "--set", "tune.default_space=false",
                       "--set", 'tune.space={"optimizer.lr" = [3e-3]}'],
}

# Commands that set TensorFlow's thread pools, which only a process without TensorFlow work yet can do.
FRESH_PROCESS = {"bench tflite"}
# Benchmarks that start processes or time several passes (15-20 s each on the loaded 2-core machine); they
# print through the same line of commands/bench.py as `bench train` and `bench frontend`, which run always.
SLOW = {"bench pipeline", "bench prepare", "bench tflite"}


def json_commands(parser, prefix=()):
    """The command lines (``"cv"``, ``"bench train"``) whose parser takes --json, found in ``parser``."""
    found = set()
    for action in parser._actions:
        if "--json" in action.option_strings:
            found.add(" ".join(prefix))
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= json_commands(sub, (*prefix, name))
    return found


def test_every_json_command_is_run():
    assert json_commands(cli.build_parser()) == set(JSON_COMMANDS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tone cache and its config, a run trained by ``train --json`` (its output kept) and exported, a
    clip and a folder dataset."""
    import contextlib
    import io

    from coughclf.export import export_tflite
    from coughclf.synthetic import write_dataset

    root = tmp_path_factory.mktemp("json_output")
    cache = write_tone_cache(root / "cache", clips_per_class=8)
    made = {"root": str(root), "cache": str(cache), "config": str(write_config(root / "tones.toml", cache, epochs=1))}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main([*JSON_COMMANDS["train"](made), "--json"]) == 0, err.getvalue()[-3000:]
    made["train output"] = out.getvalue(), err.getvalue()
    made["run"] = json.loads(out.getvalue())["run_dir"]
    made["tflite"] = str(export_tflite(made["run"], root / "tones.tflite"))
    made["clip"] = str(write_audio(root / "clip.wav", tone(1.0, 16000, 2000.0, amplitude=0.3)))
    write_dataset(root / "folder", clips_per_class=2, subjects=1, seconds=0.5)
    made["folder"] = str(root / "folder")
    return made


@pytest.mark.parametrize("command", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
                                     for name in sorted(JSON_COMMANDS)])
def test_json_output_is_one_document_on_stdout_and_progress_on_stderr(command, workspace, capfd, monkeypatch):
    argv = [*JSON_COMMANDS[command](workspace), "--json"]
    monkeypatch.setattr("coughclf.models.available", lambda: ["cough_small_cnn", "kws_cnn"])  # `models`: two
    if command == "train":
        out, err = workspace["train output"]
    elif command in FRESH_PROCESS:
        finished = subprocess.run([sys.executable, "-m", "coughclf", *argv], capture_output=True, text=True,
                                  timeout=600)
        assert finished.returncode == 0, finished.stderr[-3000:]
        out, err = finished.stdout, finished.stderr
    else:
        assert cli.main(argv) == 0, capfd.readouterr().err[-3000:]
        out, err = capfd.readouterr()
    document = json.loads(out)  # standard output holds the document and nothing else
    assert document
    if command in ("train", "cv"):
        assert "val_loss:" in err  # Keras' epoch line went to standard error
    if command == "train":
        assert document["run_dir"] == argv[argv.index("--run-dir") + 1]
        assert document["training"]["epochs_run"] == 1
        assert 0 <= document["metrics"]["accuracy"] <= 1 and document["metrics"]["split"] == "test"
    if command == "info":
        assert document["verified"].startswith("verified: 2 shards, 16 records")


def test_results_on_stdout_progress_on_stderr_at_the_descriptor_level(workspace):
    """Text results, as a shell redirects them: descriptor 1 gets the results, descriptor 2 the rest,
    even what is written to descriptor 1 directly while the command runs."""
    with_context = subprocess.run(
        [sys.executable, "-c",
         "import os\nfrom coughclf import console\n"
         "with console.stdout_for_results():\n"
         "    os.write(1, b'native chatter\\n')\n"
         "    print('a progress note')\n"
         "    console.result('the result')\n"
         "print('after the command')\n"],
        capture_output=True, text=True, timeout=60)
    assert with_context.stdout == "the result\nafter the command\n"
    assert with_context.stderr == "native chatter\na progress note\n"
    listed = subprocess.run([sys.executable, "-m", "coughclf", "info", workspace["cache"]], capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0 and listed.stdout.startswith(f"cache {workspace['cache']}: folder")
    assert listed.stderr == ""


def test_commands_print_results_through_console_result():
    """A bare print() in a command module would land on standard error (see coughclf.console)."""
    import ast
    from pathlib import Path

    import coughclf.commands

    bare = []
    for path in sorted(Path(coughclf.commands.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
                    and not any(keyword.arg == "file" for keyword in node.keywords)):
                bare.append(f"{path.name}:{node.lineno}")
    assert bare == [], "print results with coughclf.console.result, notes with report or file=sys.stderr"
