"""Cough report (spec section 1): parameter counts and per-block shapes against the tables."""

import numpy as np
import pytest
from model_checks import assert_output_shapes, assert_reported_count

from coughclf.models import build


def test_small_cnn_matches_table():
    model = assert_reported_count("cough_small_cnn", 0)
    assert_output_shapes(model, {
        "block1_conv": (62, 155, 8), "block1_pool": (31, 77, 8),
        "block2_conv": (29, 75, 12), "block2_pool": (14, 37, 12),
        "block3_conv": (12, 35, 12), "block3_pool": (6, 17, 12),
        "block4_conv": (4, 15, 16), "block4_pool": (2, 7, 16),
        "flatten": (224,), "classifier": (2,)})


LARGE_CNN_SHAPES = {
    "block1_conv": (63, 156, 16), "block1_pool": (31, 78, 16),
    "block2_conv": (15, 38, 32), "block2_pool": (14, 37, 32),
    "block3_conv": (12, 35, 64), "block3_pool": (11, 34, 64),
    "block4_conv": (9, 32, 128), "block4_pool": (8, 31, 128)}


def test_large_cnn_matches_table():
    model = assert_reported_count("cough_large_cnn", 0)
    assert_output_shapes(model, {**LARGE_CNN_SHAPES, "flatten": (31_744,), "classifier": (2,)})


def test_crnn_matches_table():
    model = assert_reported_count("cough_crnn", -2_048)
    assert_output_shapes(model, {**LARGE_CNN_SHAPES, "sequence": (31, 1024), "bilstm": (31, 512),
                                 "time_pooling": (512,), "classifier": (2,)})
    assert model.get_layer("time_pooling").count_params() == 32


def test_crnn_attention_matches_table():
    model = assert_reported_count("cough_crnn_attention", -2_048)
    assert_output_shapes(model, {**LARGE_CNN_SHAPES, "bilstm": (31, 512), "query": (31, 512),
                                 "attention": (31, 512), "time_pooling": (512,), "classifier": (2,)})
    assert model.get_layer("attention").count_params() == 1_050_624
    assert [model.get_layer(name).count_params() for name in ("query", "key", "value")] == [262_656] * 3


def test_cnns_have_dropout_and_crnns_do_not():
    dropout_rates = {name: [layer.rate for layer in build(name).layers if "dropout" in layer.name]
                     for name in ("cough_small_cnn", "cough_crnn")}
    assert dropout_rates == {"cough_small_cnn": [0.2] * 4, "cough_crnn": []}


def test_outputs_are_class_probabilities():
    model = build("cough_small_cnn", num_classes=3)
    probabilities = model.predict(np.random.default_rng(0).standard_normal((4, 313, 128)), verbose=0)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_bad_input_mode_is_a_clear_error():
    from coughclf.errors import CoughclfError

    with pytest.raises(CoughclfError, match="input_mode"):
        build("cough_small_cnn", input_mode="spectrogram")
