"""ResNet18/34 from torchvision state dicts, against torchvision on its own input."""

import keras
import numpy as np
import pytest

from coughclf.errors import CoughclfError
from coughclf.models import build, spec
from coughclf.models.checkpoints import layer_groups, load_pretrained
from coughclf.models.resnet import IMAGENET_MEAN, IMAGENET_STD
from torch_reference import random_torchvision, torch

torchvision = pytest.importorskip("torchvision")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    model = random_torchvision("resnet18")
    path = tmp_path_factory.mktemp("resnet") / "resnet18-random.pth"
    torch.save(model.state_dict(), path)
    return model, path


def images(size, batch=2, seed=1):
    """RGB images in [0, 1], channels-last, as torchvision's ToTensor scales them."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (batch, *size, 3)).astype("float32")


def torchvision_log_probabilities(model, image):
    normalize = torchvision.transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        return torch.log_softmax(model(normalize(torch.from_numpy(image).permute(0, 3, 1, 2))), -1).numpy()


@pytest.mark.parametrize("name, size, file_type", [("resnet18", (224, 224), ".pth"),
                                                   ("resnet34", (96, 128), ".safetensors")])
def test_equals_torchvision_on_its_own_input(name, size, file_type, tmp_path):
    model = random_torchvision(name, seed=2)
    path = tmp_path / f"{name}{file_type}"
    if file_type == ".pth":
        torch.save(model.state_dict(), path)
    else:
        safetensors_numpy.save_file({key: value.numpy() for key, value in model.state_dict().items()}, str(path))
    keras_model = build(name, weights=path, input_mode="image", image_size=size)
    assert keras_model.input.shape[1:] == (*size, 3) and keras_model.output.shape[1:] == (1000,)
    image = images(size)
    np.testing.assert_allclose(np.log(keras_model.predict(image, verbose=0)),
                               torchvision_log_probabilities(model, image), atol=TOLERANCE, rtol=0)


def test_new_head_keeps_the_backbone_and_freezing_trains_the_head_only(resnet18_file):
    model, path = resnet18_file
    keras_model, loaded = load_pretrained(spec("resnet18"), path,
                                          {"num_classes": 4, "input_mode": "image", "image_size": (64, 64)},
                                          freeze="backbone")
    assert loaded.initialised == ["fc"] and keras_model.output.shape[1:] == (4,)
    assert loaded.unused[-2:] == ["fc.weight (replaced by a new fc)", "fc.bias (replaced by a new fc)"]
    features = keras.Model(keras_model.input, keras_model.get_layer("avgpool").output)
    image = images((64, 64), seed=3)
    normalized = (image - np.array(IMAGENET_MEAN, "float32")) / np.array(IMAGENET_STD, "float32")
    body = torch.nn.Sequential(*list(model.children())[:-1])
    with torch.no_grad():
        expected = body(torch.from_numpy(normalized).permute(0, 3, 1, 2)).flatten(1).numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(features(image)), expected, atol=TOLERANCE, rtol=0)
    assert sorted(weight.path for weight in keras_model.trainable_weights) == ["fc/bias", "fc/kernel"]
    groups = layer_groups(keras_model, spec("resnet18").pretrained.head_layers)
    assert groups["head"] == ["fc"] and "stem_conv" in groups["backbone"] and "layer4_1_2_bn" in groups["backbone"]


def test_log_mel_input_becomes_an_imagenet_normalised_image(resnet18_file, tmp_path):
    _, path = resnet18_file
    keras_model = build("resnet18", weights=path, num_classes=3, input_mode="waveform", clip_seconds=0.5)
    assert keras_model.get_layer("stem_conv").kernel.shape == (7, 7, 3, 64)
    probe = keras.Model(keras_model.input, [keras_model.get_layer("log_mel").output,
                                            keras_model.get_layer("imagenet_normalization").output])
    waveform = np.random.default_rng(4).standard_normal((1, 8000)).astype("float32")
    log_mel, normalized = (keras.ops.convert_to_numpy(tensor) for tensor in probe(waveform))
    unit = (log_mel[0].T + 80.0) / 80.0  # [-80, 0] dB below the maximum -> [0, 1], frequency as height
    expected = (unit[..., None] - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(normalized[0], expected, atol=1e-5, rtol=0)
    keras_model.save(tmp_path / "resnet18.keras")
    loaded = keras.saving.load_model(tmp_path / "resnet18.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(waveform, verbose=0), keras_model.predict(waveform, verbose=0))


def test_wrong_checkpoints_are_named(resnet18_file, tmp_path):
    model, path = resnet18_file
    with pytest.raises(CoughclfError, match=r"\(2, 2, 2, 2\) blocks per stage, a resnet18 checkpoint; resnet34"):
        build("resnet34", weights=path)
    state = {key: value.numpy() for key, value in model.state_dict().items()}
    bottleneck = tmp_path / "bottleneck.safetensors"
    safetensors_numpy.save_file({**state, "layer1.0.conv3.weight": np.zeros((4, 4, 1, 1), "float32")},
                                str(bottleneck))
    with pytest.raises(CoughclfError, match="Bottleneck blocks"):
        build("resnet18", weights=bottleneck)
    extra = tmp_path / "extra.safetensors"
    safetensors_numpy.save_file({**state, "fc2.weight": np.zeros((2, 2), "float32")}, str(extra))
    with pytest.raises(CoughclfError, match="1 tensors map to nothing in resnet18: fc2.weight"):
        build("resnet18", weights=extra)
    with pytest.raises(CoughclfError, match="imagenet_normalization needs channels=3"):
        build("resnet18", weights=path, channels=1)
    with pytest.raises(CoughclfError, match="freeze='backbone' needs weights="):
        build("resnet18", freeze="backbone")


def test_models_json_says_which_models_take_weights_and_in_which_formats():
    from coughclf.commands.models import describe
    from coughclf.models.checkpoints import FORMATS

    assert describe("resnet18")["weight_formats"] == ["safetensors", "pytorch"]
    assert describe("kws_cnn")["weight_formats"] == []
    assert spec("ast").weight_formats == ("transformers", "safetensors", "pytorch")
    assert set(spec("ast").weight_formats) <= set(FORMATS)
