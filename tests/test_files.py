"""Atomic writing (coughclf.files) and the task registry (coughclf.tasks)."""

import csv
import json

import pytest

from coughclf.errors import CoughclfError
from coughclf.files import atomic_path, read_json, write_csv, write_json


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "history.json"
    write_json(target, [{"epoch": 0}])
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("[{\"epo", encoding="utf-8")
        raise RuntimeError("killed mid-write")
    assert read_json(target) == [{"epoch": 0}]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.json"]


def test_json_writes_nan_as_null_and_csv_takes_every_column(tmp_path):
    write_json(tmp_path / "a" / "m.json", {"auc": float("nan"), "n": [1.0, float("inf")]})
    assert json.loads((tmp_path / "a" / "m.json").read_text()) == {"auc": None, "n": [1.0, None]}
    write_csv(tmp_path / "h.csv", [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "val_loss": 2.0}])
    with open(tmp_path / "h.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"epoch": "0", "loss": "1.5", "val_loss": ""}, {"epoch": "1", "loss": "", "val_loss": "2.0"}]
    write_csv(tmp_path / "s.csv", [["acc", 0.5]], columns=["metric", "mean"])
    assert (tmp_path / "s.csv").read_text().splitlines() == ["metric,mean", "acc,0.5"]


def test_a_suffix_keeps_the_format_of_writers_that_read_it(tmp_path):
    with atomic_path(tmp_path / "roc.png", suffix=".png") as temporary:
        assert temporary.name == "roc.tmp.png"
        temporary.write_bytes(b"png")
    assert (tmp_path / "roc.png").read_bytes() == b"png" and not temporary.exists()


def test_the_task_registry_names_every_task_and_refuses_others():
    from coughclf import tasks
    from coughclf.config import SCHEMA

    assert SCHEMA["task"].choices == tuple(tasks.TASKS)
    for name in tasks.TASKS:
        task = tasks.get(name)
        assert callable(task.plan_fit) and callable(task.evaluate)
    with pytest.raises(CoughclfError, match="unknown task 'regression'; choose one of classification, ctc"):
        tasks.get("regression")
