"""TFLite and SavedModel export: builtin ops only, parity with Keras, quantisation, metadata."""

import json
import os

import numpy as np
import pytest

from conftest import tone
from coughclf.errors import CoughclfError
from coughclf.export import (check_builtin_only, convert_tflite, export_savedmodel, export_tflite,
                             flatbuffer_operators, inference_model, sidecar_path)
from coughclf.models import available, build, spec
from model_checks import SMALL_WAVEFORM_OPTIONS

LABELS = [f"digit_{index}" for index in range(10)]


def clips(count, samples=16000, seed=0):
    """Tones of different pitch and loudness with noise: inputs that move the model's outputs."""
    rng = np.random.default_rng(seed)
    return [tone(samples / 16000, frequency=float(rng.uniform(150, 3000)), amplitude=float(rng.uniform(0.05, 0.8)),
                 seed=index, noise=0.05) for index in range(count)]


def run_tflite(content, waveform):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], waveform[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]


def op_input_types(content):
    """``{op name: set of dtype names of its first input}`` of a flatbuffer."""
    from coughclf.export import operator_details

    types = {}
    for operator in operator_details(content):
        if operator["inputs"]:
            types.setdefault(operator["op_name"], set()).add(operator["inputs"][0]["dtype"])
    return types


@pytest.fixture(scope="module")
def kws_keras(tmp_path_factory):
    """An untrained kws_cnn with the log-mel front end inside, saved as .keras."""
    model = build("kws_cnn", input_mode="waveform")
    path = tmp_path_factory.mktemp("kws") / "kws_cnn.keras"
    model.save(path)
    return model, path


@pytest.mark.parametrize("stft, dft_op", [("auto", "RFFT2D"), ("matmul", "GATHER")])
def test_float32_tflite_has_builtin_ops_only_and_matches_keras(kws_keras, tmp_path, stft, dft_op):
    model, keras_path = kws_keras
    out = export_tflite(keras_path, tmp_path / "kws.tflite", labels=LABELS, stft=stft)
    content = out.read_bytes()
    operators = flatbuffer_operators(content)
    assert not [name for name in operators if name.startswith("CUSTOM")]
    assert dft_op in operators and "CONV_2D" in operators
    inputs = clips(6)
    expected = np.asarray(model.predict_on_batch(np.stack(inputs)))
    actual = np.stack([run_tflite(content, waveform) for waveform in inputs])
    assert actual.shape == (6, 10)
    assert np.abs(actual - expected).max() <= 1e-4
    assert np.array_equal(actual.argmax(1), expected.argmax(1))

    metadata = json.loads(sidecar_path(out).read_text())
    assert metadata["labels"] == LABELS and metadata["task"] == "classification"
    assert metadata["clip_samples"] == 16000 and metadata["sample_rate"] == 16000
    assert metadata["frontend"]["n_fft"] == 1024 and metadata["frontend"]["hop_length"] == 368
    assert metadata["frontend"]["stft"] == ("fft" if stft == "auto" else "matmul")
    assert metadata["frontend"]["mel_projection"] == "banded"
    assert metadata["inputs"][0]["shape"] == [1, 16000] and metadata["outputs"][0]["shape"] == [1, 10]
    assert metadata["quantization"] == "none"


def test_flex_ops_are_detected_and_rejected():
    import tensorflow as tf

    function = tf.function(lambda x: tf.math.cumprod(x, axis=1), input_signature=[tf.TensorSpec((1, 8), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], None)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    content = converter.convert()
    assert flatbuffer_operators(content) == ["CUSTOM:FlexCumprod"]
    with pytest.raises(CoughclfError, match="FlexCumprod"):
        check_builtin_only(content, "cumprod")


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_quantised_models_keep_the_front_end_float(kws_keras):
    model, _ = kws_keras
    export = inference_model(model)
    inputs = clips(8, seed=1)
    float32 = convert_tflite(export)
    reference = np.stack([run_tflite(float32, waveform) for waveform in inputs[:2]])
    with pytest.raises(CoughclfError, match="representative"):
        convert_tflite(export, "int8")

    float16 = convert_tflite(export, "float16")
    half = np.stack([run_tflite(float16, waveform) for waveform in inputs[:2]])
    assert np.abs(half - reference).max() <= 1e-2

    int8 = convert_tflite(export, "int8", representative=inputs)
    assert len(int8) <= 0.3 * len(float32)
    types = op_input_types(int8)
    assert types["LOG"] == {"float32"} and types["RFFT2D"] == {"float32"} and types["GATHER"] == {"float32"}
    assert types["CONV_2D"] == {"int8"} and "QUANTIZE" in types
    quantized = np.stack([run_tflite(int8, waveform) for waveform in inputs[:2]])
    assert np.abs(quantized - reference).max() <= 0.05


def test_dynamic_quantisation_keeps_the_banded_log_mel_float(kws_keras):
    model, _ = kws_keras
    export = inference_model(model)
    float32, dynamic = convert_tflite(export), convert_tflite(export, "dynamic")
    assert len(dynamic) <= 0.3 * len(float32)
    types = op_input_types(dynamic)
    assert types["GATHER"] == types["SUM"] == types["LOG"] == {"float32"}
    inputs = clips(2, seed=3)
    reference = np.stack([run_tflite(float32, waveform) for waveform in inputs])
    quantized = np.stack([run_tflite(dynamic, waveform) for waveform in inputs])
    assert np.abs(quantized - reference).max() <= 0.05


def test_savedmodel_serves_the_same_probabilities(kws_keras, tmp_path):
    import tensorflow as tf

    model, keras_path = kws_keras
    out = export_savedmodel(keras_path, tmp_path / "serving" / "1", labels=LABELS)
    assert json.loads((out / "coughclf.json").read_text())["labels"] == LABELS
    batch = np.stack(clips(3, seed=2))
    served = tf.saved_model.load(str(out)).signatures["serve"](tf.constant(batch))
    (probabilities,) = served.values()
    assert np.abs(probabilities.numpy() - np.asarray(model.predict_on_batch(batch))).max() <= 1e-5
    with pytest.raises(CoughclfError, match="not empty"):
        export_savedmodel(keras_path, out)


def test_export_command_reads_the_run_folder(kws_keras, tmp_path):
    from coughclf.cli import main

    _, keras_path = kws_keras
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(keras_path.read_bytes())
    (run / "config.toml").write_text('name = "kws"\n\n[data]\ndataset = "fsdd"\n\n[model]\nname = "kws_cnn"\n')
    (run / "training.json").write_text(json.dumps({"classes": LABELS}))
    assert main(["export", str(run), "--format", "tflite"]) == 0
    metadata = json.loads(sidecar_path(run / "model.tflite").read_text())
    assert metadata["labels"] == LABELS and metadata["model"] == "kws_cnn"
    assert main(["export", str(run), "--format", "savedmodel", "--quantize", "int8"]) == 2


CLASSIFIERS = [name for name in available() if spec(name).task == "classification"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_converts_to_builtin_ops(name):
    model = build(name, input_mode="waveform", **SMALL_WAVEFORM_OPTIONS.get(name, {}))
    content = convert_tflite(inference_model(model))
    assert not [op for op in flatbuffer_operators(content) if op.startswith("CUSTOM")]
    waveform = clips(1, samples=model.inputs[0].shape[1])[0]
    expected = np.asarray(model.predict_on_batch(waveform[None]))[0]
    assert np.abs(run_tflite(content, waveform) - expected).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws_cnn", "kws_crnn", "kws_parallel_cnn_lstm"])
def test_trained_digit_models_keep_their_accuracy(name, shared_data, tmp_path_factory):
    """Train briefly on FSDD's official train split, export, compare on its 300 test clips.

    float32 TFLite: max |Δp| ≤ 1e-4 and the same argmax as Keras; float16: ≤ 1e-2;
    int8 (calibrated on the run's training split): accuracy within 1 point of float32.
    """
    from coughclf.audio import load_audio
    from coughclf.config import config_from_dict
    from coughclf.predict import load_predictor, split_windows
    from coughclf.train import train

    root = tmp_path_factory.getbasetemp() / "fsdd_runs"
    config = config_from_dict({
        "name": name,
        "data": {"dataset": "fsdd", "data_dir": str(shared_data / "fsdd"), "cache": str(root / "cache"),
                 "clip_seconds": 1.0},
        "split": {"method": "official", "val": 0.0},
        "model": {"name": name, "input_mode": "waveform"},
        "train": {"epochs": int(os.environ.get("COUGHCLF_TEST_EPOCHS", 6)), "patience": 0,
                  "monitor": "accuracy"},
    })
    run = train(config, root / name, evaluate_after=False)
    predictors = {quantize: load_predictor(export_tflite(run, root / f"{name}_{quantize}.tflite", quantize))
                  for quantize in ("none", "float16", "int8")}
    keras_model = load_predictor(run / "best.keras").model
    labels = predictors["none"].metadata["labels"]
    test_files = sorted(path for path in (shared_data / "fsdd" / "recordings").glob("*.wav")
                        if int(path.stem.split("_")[2]) < 5)
    assert len(test_files) == 300
    truth = np.array([labels.index(path.stem.split("_")[0]) for path in test_files])
    windows = np.stack([split_windows(load_audio(path), 16000, 8000)[0] for path in test_files])
    keras_probabilities = np.asarray(keras_model.predict_on_batch(windows))
    tflite = {quantize: np.stack([predictor(window) for window in windows])
              for quantize, predictor in predictors.items()}
    assert np.abs(tflite["none"] - keras_probabilities).max() <= 1e-4
    assert np.array_equal(tflite["none"].argmax(1), keras_probabilities.argmax(1))
    assert np.abs(tflite["float16"] - keras_probabilities).max() <= 1e-2
    correct = {quantize: int(np.sum(p.argmax(1) == truth)) for quantize, p in tflite.items()}
    assert correct["none"] > len(truth) / 2, correct
    # Within 1 point: int8 may get at most 1 % of the clips (3) fewer right, counted in whole clips.
    assert correct["int8"] >= correct["none"] - len(truth) // 100, correct
