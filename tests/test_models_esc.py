"""ESC-10 report (spec section 4): parameter counts and per-block shapes against the tables."""

import keras
import numpy as np
import pytest
from model_checks import assert_output_shapes, assert_reported_count

from coughclf.errors import CoughclfError
from coughclf.models import build

CNN_SHAPES = {"block1_conv": (8_000, 128), "block1_pool": (4_000, 128),
              "block2_conv": (2_000, 64), "block2_pool": (1_000, 64),
              "block3_conv": (500, 32), "block3_pool": (250, 32)}


def test_cnn1d_matches_table():
    model = assert_reported_count("esc_cnn1d", 0)
    assert_output_shapes(model, {**CNN_SHAPES, "flatten": (8_000,), "classifier": (10,)})
    assert model.get_layer("classifier").count_params() == 80_010


@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_conv_transformer_matches_table_for_each_head_count(num_heads):
    model = assert_reported_count("esc_conv_transformer", 250, num_heads=num_heads)
    assert_output_shapes(model, {**CNN_SHAPES, "channels_as_tokens": (32, 250), "cls_token": (33, 250),
                                 "encoder1": (33, 250), "encoder2": (33, 250), "cls_output": (250,),
                                 "classifier": (10,)})
    counts = {layer.name: layer.count_params() for layer in model.layers}
    assert counts["encoder1"] == counts["encoder2"] == 1_278_298
    assert counts["classifier"] == 2_510 and counts["cls_token"] == 250
    assert model.get_layer("encoder1").attention.num_heads == num_heads


def test_head_is_on_the_cls_token():
    """The classifier reads exactly the CLS position of the last encoder layer."""
    model = build("esc_conv_transformer", num_heads=2)
    encoded = model.get_layer("encoder2").output
    cls_probe = keras.Model(model.input, [encoded, model.get_layer("cls_output").output])
    tokens, cls_output = cls_probe.predict(np.random.default_rng(0).standard_normal((2, 16000)), verbose=0)
    np.testing.assert_array_equal(tokens[:, 0], cls_output)


@pytest.mark.parametrize("kind, extra_params", [("sinusoidal", 0), ("learned", 33 * 250)])
def test_positional_encoding_options(kind, extra_params):
    plain = build("esc_conv_transformer", num_heads=1).count_params()
    model = build("esc_conv_transformer", num_heads=1, positional_encoding=kind)
    assert model.count_params() == plain + extra_params
    assert model.get_layer("positional_encoding").kind == kind
    with pytest.raises(CoughclfError, match="positional_encoding"):
        build("esc_conv_transformer", positional_encoding="rotary")


def test_waveform_mode_rejects_spectrogram_augmentation():
    with pytest.raises(CoughclfError, match="no spectrogram"):
        build("esc_cnn1d", input_mode="waveform", spec_augmentation=[keras.layers.Dropout(0.1)])
