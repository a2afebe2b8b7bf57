"""Helpers shared by the model tests: registry parameter counts and per-layer output shapes."""

import numpy as np

from coughclf.models import build, spec
from coughclf.models.common import trainable_params


def assert_reported_count(name, expected_difference, **options):
    """The Keras count is the report's count plus exactly the registered, explained difference."""
    model_spec = spec(name)
    assert model_spec.param_difference == expected_difference
    assert (model_spec.difference_reason != "") == (expected_difference != 0)
    model = build(name, **options)
    assert trainable_params(model) == model_spec.report_params + expected_difference
    return model


def assert_output_shapes(model, expected):
    """``expected`` maps layer names to the report's shapes, already channels-last."""
    actual = {layer: tuple(model.get_layer(layer).output.shape[1:]) for layer in expected}
    assert actual == {layer: tuple(shape) for layer, shape in expected.items()}


# Options that shrink the big models so that every-model tests stay fast; other models use the
# report's defaults. Waveform mode may need its own (the input length follows from the clip length).
SMALL_OPTIONS = {
    "ast": {"frames": 48, "n_mels": 32, "depth": 1, "width": 48, "num_heads": 4},
    "resnet18": {"frames": 32, "n_mels": 32},
    "resnet34": {"frames": 32, "n_mels": 32},
    "deepspeech2_lite": {"num_features": 16, "conv_filters": 16, "rnn_units": 16, "rnn_layers": 2},
}
# Same code paths as a lighter model (resnet18) but slow to save, load and rebuild: every-model
# tests run these only with -m slow.
HEAVY = {"resnet34"}
SMALL_WAVEFORM_OPTIONS = {
    "ast": {"frames": 48, "n_mels": 32, "depth": 1, "width": 48, "num_heads": 4},
    "resnet18": {"n_mels": 32, "clip_seconds": 1.0},
    "resnet34": {"n_mels": 32, "clip_seconds": 1.0},
    # A task head (softmax over the data's classes), as training builds it; the AudioSet head's sigmoid
    # scores are tested in tests/test_yamnet.py.
    "yamnet": {"num_classes": 3, "clip_seconds": 1.0},
}


def every(names):
    """``names`` as pytest parameters, the HEAVY ones marked slow."""
    import pytest

    return [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in names]


def random_inputs(model, batch=2, seed=0, unknown_length=40):
    """Random inputs matching ``model.inputs``: unknown dimensions get ``unknown_length`` and
    integer inputs (sequence lengths) are ``unknown_length``, i.e. full length. Several inputs
    come as a dict keyed by input name."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for tensor in model.inputs:
        shape = (batch, *(unknown_length if d is None else d for d in tensor.shape[1:]))
        if "int" in str(tensor.dtype):
            arrays[tensor.name] = np.full(shape, unknown_length, dtype=tensor.dtype)
        else:
            arrays[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays
