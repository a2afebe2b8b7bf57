"""ResNet18/34 (report 3): torchvision's counts and shapes, PyTorch padding, audio inputs, metadata."""

import keras
import numpy as np
import pytest

from conftest import tone
from coughclf.errors import CoughclfError
from coughclf.models import build, spec
from coughclf.models.common import trainable_params

TORCHVISION = {"input_mode": "image", "channels": 3, "num_classes": 1000, "image_size": (224, 224)}


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_torchvision_configuration_has_the_reports_exact_count(name):
    model = build(name, **TORCHVISION)
    assert trainable_params(model) == spec(name).report_params
    assert trainable_params(build(name)) == spec(name).report_params + spec(name).param_difference


def test_stage_output_shapes_follow_torchvision():
    model = build("resnet18", **TORCHVISION)
    expected = {"stem_relu": (112, 112, 64), "stem_pool": (56, 56, 64), "layer1_1_out": (56, 56, 64),
                "layer2_1_out": (28, 28, 128), "layer3_1_out": (14, 14, 256), "layer4_1_out": (7, 7, 512),
                "avgpool": (512,)}
    for layer, shape in expected.items():
        assert model.get_layer(layer).output.shape[1:] == shape, layer
    resnet34 = build("resnet34", **TORCHVISION)
    blocks = {stage: sum(layer.name.startswith(f"layer{stage}_") and layer.name.endswith("_add")
                         for layer in resnet34.layers) for stage in range(1, 5)}
    assert blocks == {1: 3, 2: 4, 3: 6, 4: 3}


def _conv2d_reference(image, kernel, stride, padding):
    """PyTorch ``Conv2d(..., stride, padding, bias=False)`` on one ``[H, W, C]`` image."""
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    size = kernel.shape[0]
    rows = (padded.shape[0] - size) // stride + 1
    cols = (padded.shape[1] - size) // stride + 1
    out = np.empty((rows, cols, kernel.shape[-1]), "float64")
    for i in range(rows):
        for j in range(cols):
            window = padded[i * stride:i * stride + size, j * stride:j * stride + size]
            out[i, j] = np.einsum("hwc,hwcd->d", window, kernel)
    return out


def test_strided_convolutions_pad_symmetrically_like_pytorch():
    model = build("resnet18", num_classes=2, n_mels=20, frames=26)
    image = np.random.default_rng(0).standard_normal((1, 26, 20)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer("stem_conv").output,
                                      model.get_layer("layer2_0_1_conv").output,
                                      model.get_layer("layer2_0_1_conv").input])
    stem, block, block_input = (keras.ops.convert_to_numpy(tensor)[0] for tensor in probe(image))
    mel_image = image[0].T[..., None]  # [n_mels, frames, 1]
    stem_kernel = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)
    np.testing.assert_allclose(stem, _conv2d_reference(mel_image, stem_kernel, 2, 3), rtol=1e-4, atol=1e-4)
    block_kernel = keras.ops.convert_to_numpy(model.get_layer("layer2_0_1_conv").kernel)
    unpadded = block_input[1:-1, 1:-1]  # the probe's input is after the block's ZeroPadding2D
    np.testing.assert_allclose(block, _conv2d_reference(unpadded, block_kernel, 2, 1), rtol=1e-4, atol=1e-4)


def test_audio_defaults_and_three_channel_repeat():
    model = build("resnet18")
    assert model.input.shape[1:] == (313, 128)
    assert model.output.shape[1:] == (3,)
    repeated = build("resnet18", channels=3, num_classes=5, frames=None)
    assert repeated.get_layer("stem_conv").kernel.shape == (7, 7, 3, 64)
    assert trainable_params(repeated) == 11_689_512 - 513 * 1000 + 513 * 5
    spectrograms = np.random.default_rng(1).standard_normal((2, 45, 128)).astype("float32")
    probabilities = repeated.predict(spectrograms, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_metadata_inputs_add_exactly_their_head_weights():
    plain = build("resnet18", num_classes=3, input_mode="waveform", clip_seconds=1.0)
    with_metadata = build("resnet18", num_classes=3, input_mode="waveform", clip_seconds=1.0, metadata_dim=3,
                          clip_features=True)
    assert [tensor.name for tensor in with_metadata.inputs] == ["audio", "metadata"]
    assert with_metadata.get_layer("fc").kernel.shape == (512 + 6, 3)
    assert trainable_params(with_metadata) - trainable_params(plain) == 6 * 3
    inputs = {"audio": np.stack([tone(1.0), tone(1.0, frequency=900.0, seed=1)]),
              "metadata": np.array([[0.4, 1.0, 0.2], [0.6, 0.0, 0.9]], "float32")}
    assert with_metadata.predict(inputs, verbose=0).shape == (2, 3)


@pytest.mark.parametrize("options, message", [
    ({"channels": 2}, "channels must be 1"),
    ({"image_size": (64, 64), "input_mode": "waveform"}, "image_size"),
    ({"clip_features": True}, "input_mode='waveform'"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(CoughclfError, match=message):
        build("resnet18", **options)


def test_resnet_with_metadata_round_trips(tmp_path):
    model = build("resnet18", input_mode="waveform", clip_seconds=0.5, metadata_dim=2, clip_features=True)
    inputs = {"audio": np.stack([tone(0.5), tone(0.5, frequency=250.0, seed=2)]),
              "metadata": np.array([[0.1, 1.0], [0.9, 0.0]], "float32")}
    path = tmp_path / "resnet18.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))
