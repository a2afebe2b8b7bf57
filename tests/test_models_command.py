"""``coughclf models`` and ``coughclf bench train``."""

import argparse
import json

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


def test_bench_train_reports_a_median_step_time():
    from coughclf.bench import train

    args = argparse.Namespace(model="cough_small_cnn", batch_size=4, steps=2, warmup=1, jit_compile="off",
                              seed=0)
    result = train.run(args)
    assert result["input_shape"] == [313, 128] and result["trainable_params"] == 4_682
    assert 0 < result["min_step_ms"] <= result["median_step_ms"] <= result["max_step_ms"]
