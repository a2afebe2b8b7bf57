"""The inputs of a run decided once: the model's input (coughclf.inputs) and the pipeline's options."""

import dataclasses

import pytest

from coughclf.config import config_from_dict
from coughclf.errors import CoughclfError
from coughclf.inputs import dataset_options, input_seconds, model_input
from coughclf.pipeline import DatasetOptions


def _config(model, data=None, frontend=None):
    raw = {"data": {"dataset": "folder", "data_dir": ".", **(data or {})}, "model": {"name": model},
           "frontend": frontend or {}}
    return config_from_dict(raw)


@pytest.mark.parametrize("model, data, frontend, seconds", [
    ("kws_cnn", {}, {}, 1.0),                                                # the model's registered length
    ("kws_cnn", {"clip_seconds": 0.75}, {"n_mels": 64}, 0.75),               # [data] and [frontend] over it
    ("esc_cnn1d", {"windows": 3, "clip_seconds": 2.0, "window_seconds": 0.5}, {}, 0.5),  # one window
])
def test_the_built_model_takes_the_input_decided_from_the_config(model, data, frontend, seconds):
    from coughclf.classification import build_model

    config = _config(model, data, frontend)
    decided = model_input(config)
    assert decided.seconds == seconds and decided.sample_rate == 16000
    built = build_model(config, 2, decided.sample_rate)
    assert built.inputs[0].shape[1] == round(seconds * decided.sample_rate)
    assert input_seconds(decided, built) == seconds
    if decided.frontend is None:
        assert model == "esc_cnn1d"  # a raw-waveform model
    else:
        assert built.get_layer("log_mel").n_mels == decided.frontend["n_mels"] == frontend.get("n_mels", 128)


def test_a_runs_pipeline_options_follow_its_config():
    config = _config("kws_cnn", {"windows": 4, "clip_seconds": 2.0, "window_seconds": 0.5})
    config["balance"].update(mode="oversample", max_repeats=3.0)
    train = dataset_options(config, mode="train", seconds=0.5)
    assert (train.clip_seconds, train.windows, train.window_seconds) == (2.0, 4, 0.5)
    assert (train.balance, train.max_repeats, train.batch_size) == ("oversample", 3.0, 32)
    evaluation = dataset_options(config, mode="eval", seconds=0.5, batch_size=8)
    assert (evaluation.balance, evaluation.max_repeats, evaluation.batch_size) == (None, None, 8)


@pytest.mark.parametrize("fields, message", [
    ({"mode": "test"}, "unknown pipeline mode 'test'"),
    ({"batch_size": 0}, "batch_size and shuffle_buffer must be positive"),
    ({"mode": "eval", "balance": "oversample"}, "use balance=None in eval mode"),
    ({"windows": 3}, "windowing needs both windows"),
    ({"audio_dtype": "int8"}, "audio_dtype must be one of"),
])
def test_dataset_options_are_checked_when_made(fields, message):
    with pytest.raises(CoughclfError, match=message):
        DatasetOptions(**fields)
    with pytest.raises(CoughclfError, match=message):  # a variant is checked too
        dataclasses.replace(DatasetOptions(), **fields)


def test_none_in_the_frontend_table_turns_an_option_off_and_survives_the_run_config():
    from coughclf.classification import build_model
    from coughclf.config import dumps_config

    config = _config("kws_cnn", frontend={"normalize": "per_example"})
    assert build_model(config, 2, 16000).get_layer("log_mel").normalize == "per_example"
    config = _config("kws_cnn", frontend={"normalize": "none"})
    assert model_input(config).frontend["normalize"] is None
    assert build_model(config, 2, 16000).get_layer("log_mel").normalize is None
    assert 'normalize = "none"' in dumps_config(config)
