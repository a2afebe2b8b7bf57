"""AST from published checkpoints: transformers folders and the AST repository's .pth, against PyTorch.

The reference is transformers' ASTForAudioClassification / ASTModel with random weights the
test makes (no network here). The AST repository's layout is built from the same tensors under
its names, as its ``ASTModel.state_dict()`` saves them, so both layouts are checked against one
PyTorch forward pass.
"""

import keras
import numpy as np
import pytest

from coughclf.errors import CoughclfError
from coughclf.layers.kaldi import kaldi_samples
from coughclf.layers.patches import resize_positional_grid
from coughclf.models import build
from coughclf.models.checkpoints import read_checkpoint
from torch_reference import TINY, random_ast, torch

transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

# Gong et al.'s ASTModel on AudioSet: 12 x 768, 1,024 frames x 128 bins, stride 10, 527 classes.
AUDIOSET = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "max_length": 1024, "num_mel_bins": 128, "num_labels": 527}
TOLERANCE = 1e-4


def torch_log_probabilities(model, fbank):
    with torch.no_grad():
        return torch.log_softmax(model(input_values=torch.from_numpy(fbank)).logits, -1).numpy()


def fbanks(frames, mels, batch=2, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, frames, mels)).astype("float32")


@pytest.fixture(scope="module")
def tiny_ast(tmp_path_factory):
    """``(torch model, folder)``: a transformers folder as ``save_pretrained`` writes (model.safetensors)."""
    model = random_ast(TINY)
    folder = tmp_path_factory.mktemp("ast") / "ast-tiny"
    model.save_pretrained(folder)
    return model, folder


def original_layout(tensors, rng):
    """The AST repository's ``ASTModel.state_dict()`` of the same weights, under nn.DataParallel."""
    prefix = "audio_spectrogram_transformer."
    state = {"v.cls_token": tensors[f"{prefix}embeddings.cls_token"],
             "v.dist_token": tensors[f"{prefix}embeddings.distillation_token"],
             "v.pos_embed": tensors[f"{prefix}embeddings.position_embeddings"],
             "v.norm.weight": tensors[f"{prefix}layernorm.weight"], "v.norm.bias": tensors[f"{prefix}layernorm.bias"]}
    for part in ("weight", "bias"):
        state[f"v.patch_embed.proj.{part}"] = tensors[f"{prefix}embeddings.patch_embeddings.projection.{part}"]
        state[f"mlp_head.0.{part}"] = tensors[f"classifier.layernorm.{part}"]
        state[f"mlp_head.1.{part}"] = tensors[f"classifier.dense.{part}"]
        for index in range(TINY["num_hidden_layers"]):
            layer, block = f"{prefix}encoder.layer.{index}.", f"v.blocks.{index}."
            state[f"{block}attn.qkv.{part}"] = np.concatenate(
                [tensors[f"{layer}attention.attention.{name}.{part}"] for name in ("query", "key", "value")])
            for original, hugging_face in (("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                                           ("attn.proj", "attention.output.dense"),
                                           ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
                state[f"{block}{original}.{part}"] = tensors[f"{layer}{hugging_face}.{part}"]
    width = TINY["hidden_size"]
    # timm's DeiT keeps its two ImageNet classifiers; AST's forward never calls them.
    for head in ("head", "head_dist"):
        state[f"v.{head}.weight"] = rng.standard_normal((1000, width)).astype("float32")
        state[f"v.{head}.bias"] = rng.standard_normal(1000).astype("float32")
    return {f"module.{name}": torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}


def test_transformers_folder_equals_pytorch(tiny_ast):
    model, folder = tiny_ast
    keras_model = build("ast", weights=folder)
    assert keras_model.input.shape[1:] == (56, 36) and keras_model.output.shape[1:] == (5,)
    assert keras_model.get_layer("positional_embedding").grid == (3, 5)
    fbank = fbanks(56, 36)
    np.testing.assert_allclose(np.log(keras_model.predict(fbank, verbose=0)), torch_log_probabilities(model, fbank),
                               atol=TOLERANCE, rtol=0)


def test_pytorch_model_bin_and_the_original_repository_layout_load_the_same(tiny_ast, tmp_path):
    model, folder = tiny_ast
    tensors = safetensors_numpy.load_file(str(folder / "model.safetensors"))
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "config.json").write_text((folder / "config.json").read_text())
    torch.save({name: torch.from_numpy(value) for name, value in tensors.items()}, bin_folder / "pytorch_model.bin")
    original = tmp_path / "audioset_tiny.pth"
    torch.save(original_layout(tensors, np.random.default_rng(3)), original)

    fbank = fbanks(56, 36, seed=4)
    expected = torch_log_probabilities(model, fbank)
    from_bin = build("ast", weights=bin_folder)
    # The original records neither heads nor mel bins: they are given, as for any non-DeiT-base size.
    from_original = build("ast", weights=original, num_heads=4, n_mels=36)
    for keras_model in (from_bin, from_original):
        np.testing.assert_allclose(np.log(keras_model.predict(fbank, verbose=0)), expected, atol=TOLERANCE, rtol=0)
    # timm's epsilons (1e-6 in the blocks, 1e-5 in the head) for the original, transformers' 1e-12 for the folder.
    assert from_original.get_layer("norm").epsilon == 1e-6 and from_original.get_layer("head_norm").epsilon == 1e-5
    assert from_bin.get_layer("norm").epsilon == from_bin.get_layer("head_norm").epsilon == 1e-12


def test_ast_model_without_a_head_gives_the_pooled_output(tmp_path):
    backbone = random_ast(TINY, head=False, seed=5)
    backbone.save_pretrained(tmp_path / "ast-backbone")
    keras_model = build("ast", weights=tmp_path / "ast-backbone", num_classes=3)
    pooled = keras.Model(keras_model.input, keras_model.get_layer("cls_dist_mean").output)
    fbank = fbanks(56, 36, seed=6)
    with torch.no_grad():
        expected = backbone(input_values=torch.from_numpy(fbank)).pooler_output.numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled(fbank)), expected, atol=TOLERANCE, rtol=0)


def test_fine_tuning_build_replaces_the_head_and_cuts_positions(tiny_ast):
    from coughclf.models import spec
    from coughclf.models.checkpoints import load_pretrained

    model, folder = tiny_ast
    keras_model, loaded = load_pretrained(spec("ast"), folder, {"num_classes": 3, "frames": 36})
    assert loaded.initialised == ["head"]
    assert loaded.resized == ["audio_spectrogram_transformer.embeddings.position_embeddings: "
                              "patch grid 3x5 -> 3x3"]
    positions = model.audio_spectrogram_transformer.embeddings.position_embeddings.detach().numpy()
    expected = resize_positional_grid(positions[0, 2:].reshape(3, 5, 32), (3, 3))
    actual = keras.ops.convert_to_numpy(keras_model.get_layer("positional_embedding").embedding)
    np.testing.assert_array_equal(actual[0, 2:].reshape(3, 3, 32), expected)
    np.testing.assert_array_equal(actual[0, :2], positions[0, :2])
    head_norm = model.classifier.layernorm.weight.detach().numpy()
    np.testing.assert_array_equal(keras_model.get_layer("head_norm").gamma.numpy(), head_norm)
    assert keras_model.output.shape[1:] == (3,)


def test_waveform_mode_computes_the_recipes_features(tiny_ast):
    model, folder = tiny_ast
    keras_model = build("ast", weights=folder, input_mode="waveform")
    fbank_layer = keras_model.get_layer("kaldi_fbank")
    assert fbank_layer.normalization == "audioset" and fbank_layer.n_mels == 36
    assert keras_model.input.shape[1:] == (kaldi_samples(56),)
    rng = np.random.default_rng(7)
    waveforms = (0.1 * rng.standard_normal((2, kaldi_samples(56)))).astype("float32")
    extractor = transformers.ASTFeatureExtractor(num_mel_bins=36, max_length=56)
    features = extractor(list(waveforms), sampling_rate=16000, return_tensors="np")["input_values"]
    # transformers' feature extractor runs torchaudio's Kaldi fbank: the whole path, waveform to class.
    np.testing.assert_allclose(np.log(keras_model.predict(waveforms, verbose=0)),
                               torch_log_probabilities(model, features.astype("float32")), atol=TOLERANCE, rtol=0)
    with pytest.raises(CoughclfError, match=r"frontend options \['mel_scale'\] are not KaldiFbank's"):
        build("ast", weights=folder, input_mode="waveform", frontend={"mel_scale": "htk", "hop_length": 160})


def test_unmapped_tensors_and_shape_mismatches_are_named(tiny_ast, tmp_path):
    _, folder = tiny_ast
    tensors = safetensors_numpy.load_file(str(folder / "model.safetensors"))
    extra = tmp_path / "extra.safetensors"
    safetensors_numpy.save_file({**tensors, "audio_spectrogram_transformer.pooler.weight": np.ones(3, "float32")},
                                str(extra))
    with pytest.raises(CoughclfError, match=r"1 tensors map to nothing in ast: audio_spectrogram_transformer\.pooler"):
        build("ast", weights=extra, num_heads=4, n_mels=36, frames=56)
    with pytest.raises(CoughclfError, match=r"'audio_spectrogram_transformer.encoder.layer.0.intermediate.dense"
                                            r".weight' has shape \[64, 32\].*needs \[32, 48\]"):
        build("ast", weights=folder, mlp_dim=48)
    with pytest.raises(CoughclfError, match="not an AST checkpoint"):
        build("ast", weights=_torchvision_like(tmp_path))


def _torchvision_like(tmp_path):
    path = tmp_path / "not_ast.safetensors"
    safetensors_numpy.save_file({"conv1.weight": np.zeros((4, 3, 7, 7), "float32")}, str(path))
    return path


def test_a_file_that_is_not_a_checkpoint_is_one_clear_line(tmp_path):
    with pytest.raises(CoughclfError, match="do not exist"):
        read_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CoughclfError, match="needs config.json"):
        read_checkpoint(tmp_path / "folder")
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(CoughclfError, match="unknown checkpoint type '.ckpt'"):
        read_checkpoint(tmp_path / "model.ckpt")
    (tmp_path / "broken.safetensors").write_bytes(b"not a header")
    with pytest.raises(CoughclfError, match="not a .safetensors file"):
        read_checkpoint(tmp_path / "broken.safetensors")
    (tmp_path / "broken.pth").write_bytes(b"not a zip")
    with pytest.raises(CoughclfError, match="not a PyTorch state dict"):
        read_checkpoint(tmp_path / "broken.pth")
    with pytest.raises(CoughclfError, match="takes no pretrained weights"):
        build("kws_cnn", weights=tmp_path / "broken.pth")


@pytest.mark.slow
def test_audioset_size_equals_pytorch(tmp_path):
    model = random_ast(AUDIOSET, seed=8)
    with torch.no_grad():  # AudioSet-like scale: 0.3 would saturate a 768-wide softmax
        for parameter in model.parameters():
            parameter.mul_(0.1)
    model.save_pretrained(tmp_path / "ast-audioset")
    keras_model = build("ast", weights=tmp_path / "ast-audioset")
    assert keras_model.get_layer("positional_embedding").grid == (12, 101)
    assert keras_model.count_params() == 86_594_063
    fbank = fbanks(1024, 128, batch=1, seed=9)
    np.testing.assert_allclose(np.log(keras_model.predict(fbank, verbose=0)), torch_log_probabilities(model, fbank),
                               atol=TOLERANCE, rtol=0)
