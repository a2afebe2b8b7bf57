"""Fine-tuned pretrained AST and ResNet18 export to TFLite with built-in ops only, outputs as Keras'.

Each model is built from a random checkpoint the test writes (AST at a tiny size; ResNet18 at
its own, hence slow), with a new 3-class head,
fine-tuned for one step on waveforms, then exported through ``coughclf.export`` (float32,
float16, dynamic-range int8) and run by the TFLite interpreter on one thread.
"""

import json

import numpy as np
import pytest

from coughclf.export import convert_tflite, export_tflite, flatbuffer_operators, inference_model
from coughclf.layers.kaldi import kaldi_samples
from coughclf.models import build
from test_export import clips, op_input_types, run_tflite
from torch_reference import TINY, random_ast, random_torchvision, torch

# float32 as for every model (tests/test_export.py); float16 and dynamic as there, for probabilities.
TOLERANCES = {"none": 1e-4, "float16": 1e-2, "dynamic": 0.05}


def fine_tune_one_step(model, seed=0):
    rng = np.random.default_rng(seed)
    samples = model.input.shape[1]
    waveforms = np.stack(clips(4, samples, seed=seed))
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    model.train_on_batch(waveforms, np.eye(3, dtype="float32")[rng.integers(0, 3, 4)])
    return model


@pytest.fixture(scope="module")
def fine_tuned_ast(tmp_path_factory):
    """A tiny AST (Kaldi fbank inside) from a transformers folder, fine-tuned with a 3-class head."""
    folder = tmp_path_factory.mktemp("ast") / "ast-tiny"
    random_ast(TINY).save_pretrained(folder)
    return fine_tune_one_step(build("ast", weights=folder, num_classes=3, input_mode="waveform"))


def fine_tuned_resnet18(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(random_torchvision("resnet18").state_dict(), path)
    return fine_tune_one_step(build("resnet18", weights=path, num_classes=3, input_mode="waveform", clip_seconds=1.0))


@pytest.mark.slow  # three conversions of an AST: ~45 s loaded; its input length is tested below
def test_fine_tuned_ast_exports_with_builtin_ops_and_keras_outputs(fine_tuned_ast):
    check_export(fine_tuned_ast)


@pytest.mark.slow  # 11.7 M weights: three conversions take minutes on two cores
def test_fine_tuned_resnet18_exports_with_builtin_ops_and_keras_outputs(tmp_path):
    check_export(fine_tuned_resnet18(tmp_path))


def check_export(model):
    export = inference_model(model)
    inputs = clips(3, model.input.shape[1], seed=5)
    expected = np.asarray(model.predict_on_batch(np.stack(inputs)))
    contents = {quantize: convert_tflite(export, quantize) for quantize in TOLERANCES}
    for quantize, content in contents.items():
        assert not [op for op in flatbuffer_operators(content) if op.startswith("CUSTOM")], quantize
        actual = np.stack([run_tflite(content, waveform) for waveform in inputs])
        assert np.abs(actual - expected).max() <= TOLERANCES[quantize], quantize
    # Tiny widths: graph overhead weighs more than the weights, so only the order is fixed.
    assert len(contents["dynamic"]) < len(contents["float16"]) < len(contents["none"])
    # The front end (Kaldi fbank or log-mel, banded mel projection) stays float in dynamic int8.
    types = op_input_types(contents["dynamic"])
    assert types["RFFT2D"] == types["GATHER"] == types["LOG"] == {"float32"}


def test_exported_ast_takes_the_kaldi_input_length(fine_tuned_ast, tmp_path):
    out = export_tflite(fine_tuned_ast, tmp_path / "ast.tflite", labels=["a", "b", "c"])
    metadata = json.loads(out.with_name("ast.tflite.json").read_text())
    assert metadata["clip_samples"] == kaldi_samples(TINY["max_length"])
    assert metadata["frontend"]["layer"] == "KaldiFbank"
    assert metadata["frontend"]["normalization"] == "audioset"
    assert metadata["frontend"]["mel_projection"] == "banded"
