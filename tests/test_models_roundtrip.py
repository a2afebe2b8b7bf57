"""Every registered model: .keras round trip with safe_mode, no Lambda layers, waveform mode."""

import json

import keras
import numpy as np
import pytest
from model_checks import SMALL_OPTIONS, SMALL_WAVEFORM_OPTIONS, every, random_inputs

from coughclf.models import available, build, spec

CLASSIFIERS = [name for name in available() if spec(name).task == "classification"]


def _predict(model, inputs):
    """Inference outputs as a list of arrays (an eager call: no tracing for a single batch)."""
    return [keras.ops.convert_to_numpy(output) for output in keras.tree.flatten(model(inputs, training=False))]


@pytest.mark.parametrize("name", every(available()))
def test_saves_and_loads_with_safe_mode_to_identical_predictions(name, tmp_path):
    model = build(name, **SMALL_OPTIONS.get(name, {}))
    assert '"Lambda"' not in json.dumps(model.get_config(), default=str)
    inputs = random_inputs(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for expected, actual in zip(_predict(model, inputs), _predict(loaded, inputs), strict=True):
        np.testing.assert_array_equal(actual, expected)


def _augmentations(name):
    """Noise on the waveform and dropout on the spectrogram (where the model has one): layers
    that change their input only when training, like the project's augmentation layers."""
    spectrogram = [keras.layers.Dropout(0.5)] if spec(name).defaults.get("frontend") else None
    return {"waveform_augmentation": [keras.layers.GaussianNoise(0.5)], "spec_augmentation": spectrogram}


@pytest.mark.parametrize("name", every(CLASSIFIERS))
def test_waveform_mode_runs_and_augmentation_is_inactive_at_inference(name):
    options = {"input_mode": "waveform", **SMALL_WAVEFORM_OPTIONS.get(name, {})}
    augmented, plain = build(name, **options, **_augmentations(name)), build(name, **options)
    plain.set_weights(augmented.get_weights())
    (waveform_input,) = [tensor for tensor in augmented.inputs if len(tensor.shape) == 2][:1]
    assert waveform_input.shape[1] >= 16000 * 0.4  # a raw waveform, not features
    inputs = random_inputs(augmented)
    expected = _predict(plain, inputs)
    np.testing.assert_allclose(expected[0].sum(-1), 1.0, rtol=1e-5)
    for actual_output, expected_output in zip(_predict(augmented, inputs), expected, strict=True):
        np.testing.assert_array_equal(actual_output, expected_output)


def test_augmentation_is_active_in_training():
    options = {"input_mode": "waveform", "clip_seconds": 10.0}
    augmented = build("cough_crnn", **options, **_augmentations("cough_crnn"))
    plain = build("cough_crnn", **options)
    plain.set_weights(augmented.get_weights())
    waveform = random_inputs(augmented, batch=4)
    difference = np.abs(keras.ops.convert_to_numpy(augmented(waveform, training=True))
                        - keras.ops.convert_to_numpy(plain(waveform, training=True)))
    assert difference.max() > 1e-4
