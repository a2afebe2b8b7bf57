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


def random_inputs(model, batch=2, seed=0, unknown_length=40):
    """Random float inputs matching ``model.inputs`` (unknown dimensions get ``unknown_length``)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((batch, *(unknown_length if d is None else d for d in x.shape[1:])))
              .astype(x.dtype) for x in model.inputs]
    return arrays[0] if len(arrays) == 1 else arrays
