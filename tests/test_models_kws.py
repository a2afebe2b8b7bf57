"""Spoken-digits report (spec section 2): parameter counts and per-block shapes against the tables."""

import numpy as np
from model_checks import assert_output_shapes, assert_reported_count

from coughclf.models import build, spec
from coughclf.models.common import frames_for


def test_baseline_cnn_matches_table():
    model = assert_reported_count("kws_cnn", 0)
    assert_output_shapes(model, {
        "block1_conv": (130, 46, 16), "block1_pool": (65, 23, 16),
        "block2_conv": (67, 25, 32), "block2_pool": (33, 12, 32),
        "block3_conv": (35, 14, 64), "block3_pool": (17, 7, 64),
        "block4_conv": (19, 9, 128), "block4_pool": (9, 4, 128),
        "flatten": (4_608,), "classifier": (10,)})


def test_crnn_matches_table_with_lstm_over_channels():
    model = assert_reported_count("kws_crnn", -384)
    assert_output_shapes(model, {
        "block1_pool": (22, 128), "block2_pool": (11, 128), "block3_pool": (5, 256),
        "channels_as_sequence": (256, 5), "lstm": (256, 96), "flatten": (24_576,), "dense": (64,),
        "classifier": (10,)})
    assert model.get_layer("block3_conv").count_params() == 164_096


def test_parallel_cnn_lstm_matches_table():
    model = assert_reported_count("kws_parallel_cnn_lstm", -1_024)
    assert_output_shapes(model, {
        "cnn_block1_conv": (126, 44, 16), "cnn_block1_pool": (63, 22, 16),
        "cnn_block2_conv": (61, 22, 32), "cnn_block2_pool": (30, 11, 32),
        "cnn_block3_conv": (28, 11, 64), "cnn_block3_pool": (14, 5, 64),
        "cnn_block4_conv": (12, 5, 64), "cnn_block4_pool": (3, 1, 64), "cnn_flatten": (192,),
        "rnn_pool": (32, 22, 1), "bilstm": (32, 256), "rnn_flatten": (8_192,),
        "concatenate": (8_384,), "classifier": (10,)})


def test_waveform_front_end_gives_the_reported_44_frames():
    frontend = spec("kws_cnn").defaults["frontend"]
    assert frames_for(1.0, 16000, frontend["hop_length"]) == 44
    model = build("kws_crnn", input_mode="waveform")
    assert tuple(model.input.shape) == (None, 16000)
    assert tuple(model.get_layer("log_mel").output.shape) == (None, 44, 128)
    probabilities = model.predict(np.zeros((1, 16000), "float32"), verbose=0)
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
