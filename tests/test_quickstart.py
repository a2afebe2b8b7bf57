"""The README's own-sounds quick start, run exactly as written, on generated audio (issue 23, item 3).

The commands are read out of README.md, so the README and this test cannot drift apart: the data folder
and the recording to classify are generated under the names the lines use.
"""

import json
import re
import shlex
from pathlib import Path

import pytest

from coughclf import cli, synthetic

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- quick start:"
STEPS = ["prepare", "train", "evaluate", "export", "predict"]  # folder → train → evaluate → export → predict


def quick_start_commands(readme=ROOT / "README.md"):
    """The command lines (argument lists) of the code block after the quick-start marker."""
    text = readme.read_text(encoding="utf-8")
    assert MARKER in text, f"README.md lost its quick-start marker {MARKER!r}"
    block = re.search(r"```sh\n(.*?)```", text[text.index(MARKER):], re.DOTALL).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def _option(argv, name):
    return argv[argv.index(name) + 1]


def test_the_quick_start_is_five_coughclf_lines_that_hand_each_other_their_outputs(tmp_path, monkeypatch):
    """Without training: each line reads what the line before it writes, and the template loads."""
    from coughclf.commands.export import default_output
    from coughclf.config import load_config

    commands = quick_start_commands()
    assert [argv[:2] for argv in commands] == [["coughclf", step] for step in STEPS]
    prepare, train, evaluate, export, predict = commands
    assert prepare[2] == "folder"
    overrides = [train[index + 1] for index, word in enumerate(train) if word == "--set"]
    config = load_config(ROOT / train[2], overrides)  # the template, with the line's overrides
    assert config["data"]["cache"] == _option(prepare, "--out")
    run_dir = _option(train, "--run-dir")
    assert evaluate[2] == export[2] == run_dir
    monkeypatch.chdir(tmp_path)
    Path(run_dir).mkdir(parents=True)  # as train leaves it
    assert predict[2] == str(default_output(run_dir, "tflite", "none"))
    assert config["model"]["name"] == "yamnet" and config["model"]["weights"] == YAMNET_WEIGHTS.name


def test_a_missing_weights_file_is_named_with_where_to_get_it_before_any_work(tmp_path, monkeypatch, capsys):
    """A newcomer who skipped the download is told which file and where YAMNet's weights come from."""
    _, train, *_ = quick_start_commands()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    assert cli.main(train[1:]) == 2
    error = capsys.readouterr().err
    assert "model.weights = 'yamnet.tflite' does not exist" in error and "docs/yamnet.md" in error, error
    assert not (tmp_path / "runs").exists()  # no run folder claimed for a run that cannot start


YAMNET_WEIGHTS = SHARED_DATA.parent / "weights" / "yamnet.tflite"


def test_the_quick_start_runs_as_written_on_generated_recordings(tmp_path, monkeypatch, capsys):
    import soundfile

    if not YAMNET_WEIGHTS.exists():
        pytest.skip(f"{YAMNET_WEIGHTS} not found (see ../shared/weights/README.md)")
    commands = quick_start_commands()
    by_step = dict(zip(STEPS, commands))
    # Two classes of recordings, in the folder the lines name, and the recording predict classifies.
    synthetic.write_dataset(tmp_path / _option(by_step["prepare"], "--data-dir"), clips_per_class=20,
                            subjects=10, seconds=1.0)
    recording = tmp_path / by_step["predict"][-1]
    soundfile.write(str(recording), synthetic.cough_clip("wet", subject=99, seconds=1.0, seed=12345), 16000)
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")  # the template, at the path the lines give
    (tmp_path / YAMNET_WEIGHTS.name).symlink_to(YAMNET_WEIGHTS)  # the download the README asks for
    monkeypatch.chdir(tmp_path)

    printed = {}
    for step, argv in by_step.items():
        code = cli.main(argv[1:])
        printed[step] = capsys.readouterr()
        assert code == 0, (argv, printed[step].err[-3000:])

    run_dir = Path(_option(by_step["train"], "--run-dir"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_names"] == ["dry", "wet"] and metrics["accuracy"] >= 0.75
    assert (run_dir / "plots" / "confusion_matrix.png").exists()
    assert "classes: dry 20, wet 20" in printed["prepare"].out
    assert f"run folder: {run_dir}" in printed["train"].out
    assert Path(by_step["predict"][2]).exists()  # export wrote the file predict reads
    assert re.search(rf"{re.escape(recording.name)}\s+wet\s", printed["predict"].out), printed["predict"].out
