"""``coughclf models`` (``coughclf bench train``: test_bench.py)."""

import json

import pytest

from coughclf.errors import CoughclfError
from coughclf.models import build

from coughclf.cli import main
from coughclf.commands.models import describe


def test_describe_reports_counts_and_the_explained_difference():
    entry = describe("kws_parallel_cnn_lstm")
    assert entry["trainable_params"] == entry["report_params"] + entry["param_difference"] == 259_018
    assert "4*h" in entry["difference_reason"]
    assert entry["inputs"] == [{"name": "audio", "shape": [44, 128], "dtype": "float32"}]
    json.dumps(entry)


def test_models_name_prints_the_summary(capsys):
    assert main(["models", "cough_small_cnn"]) == 0
    assert "Trainable params: 4,682" in capsys.readouterr().out


def test_unknown_model_is_one_clear_line(capsys):
    assert main(["models", "no_such_model"]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err


def test_build_names_an_option_the_model_does_not_take():
    with pytest.raises(CoughclfError, match=r"kws_cnn: unknown options \['n_mels'\]; it takes .*clip_seconds"):
        build("kws_cnn", n_mels=32)
