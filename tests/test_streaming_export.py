"""The TFLite streaming export: state as explicit inputs and outputs, builtins only, float32 and int8, its
sidecar, parity with the Keras streaming form on real speech, and the command."""

import json

import keras
import numpy as np
import pytest
from streaming_checks import (TONE_LABELS, noise, recording, stream_outputs, tone_burst, tone_detector,
                              unsaturate)
from test_export import op_input_types

from coughclf.cli import main
from coughclf.errors import CoughclfError
from coughclf.export import flatbuffer_operators, inference_model, sidecar_path
from coughclf.models import build
from coughclf.streaming import streaming_form, streaming_options
from coughclf.streaming.export import VARIABLE_OPERATORS, check_stateless, export_streaming_tflite
from coughclf.streaming.runner import KerasStream, TFLiteStream, load_stream


@pytest.fixture(scope="module")
def detector():
    return tone_detector()


def test_float32_streaming_tflite_matches_the_keras_stream_on_real_speech(shared_data, tmp_path):
    audio = recording([shared_data / "fsdd" / "recordings" / name for name in ("4_lucas_1.wav", "9_george_7.wav")])
    keras.utils.set_random_seed(2)
    model = unsaturate(build("kws_cnn", **streaming_options("kws_cnn")), audio)
    out = export_streaming_tflite(model, tmp_path / "kws_streaming.tflite", labels=[str(i) for i in range(10)])
    content = out.read_bytes()
    operators = flatbuffer_operators(content)
    assert not [name for name in operators if name.startswith("CUSTOM") or name in VARIABLE_OPERATORS]
    assert {"RFFT2D", "CONV_2D", "CONCATENATION", "STRIDED_SLICE"} <= set(operators)

    metadata = json.loads(sidecar_path(out).read_text())
    streaming = metadata["streaming"]
    assert streaming["hop_samples"] == 320 and streaming["window_samples"] == metadata["clip_samples"] == 16000
    assert streaming["frame_hop_samples"] == 160 and streaming["delay_samples"] == 96
    assert streaming["warmup_hops"] == 50
    assert [state["name"] for state in streaming["states"]][:2] == ["log_mel_state", "block1_conv_state"]
    assert metadata["inputs"][0] == {"name": "audio", "shape": [1, 320], "dtype": "float32"}
    assert len(metadata["outputs"]) == len(metadata["inputs"]) == 1 + len(streaming["states"])
    assert metadata["frontend"]["center"] is False and metadata["frontend"]["mel_projection"] == "banded"

    tflite = load_stream(out)
    assert isinstance(tflite, TFLiteStream)
    reference = stream_outputs(KerasStream(streaming_form(inference_model(model))), audio, 50)
    actual = stream_outputs(tflite, audio, 50)
    assert reference.std(axis=0).max() > 1e-3
    np.testing.assert_allclose(actual, reference, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_int8_streaming_tflite_keeps_the_samples_and_front_end_float(detector, tmp_path):
    rng = np.random.default_rng(3)
    calibration = [noise(4000, rng) + tone_burst(label, 4000, rng) for label in ("low", "high")] * 3
    out = export_streaming_tflite(detector, tmp_path / "tones_int8.tflite", "int8", calibration,
                                  labels=TONE_LABELS)
    content = out.read_bytes()
    export_streaming_tflite(detector, tmp_path / "tones.tflite", labels=TONE_LABELS)
    types = op_input_types(content)
    assert types["CONV_2D"] == {"int8"} and types["RFFT2D"] == {"float32"} and types["LOG"] == {"float32"}
    # The buffer of raw samples stays float, the convolution's buffer is int8.
    assert types["CONCATENATION"] == {"float32", "int8"}, types
    check_stateless(content, "tones int8")
    assert json.loads(sidecar_path(out).read_text())["quantization"] == "int8"

    audio = np.concatenate([noise(4000, rng) + tone_burst(label, 4000, rng) for label in ("low", "high", "low")])
    quantised = stream_outputs(load_stream(out), audio, 30)
    reference = stream_outputs(load_stream(tmp_path / "tones.tflite"), audio, 30)
    assert np.abs(quantised - reference).max() <= 0.05
    clear = reference.max(1) > 0.6  # hops where one class leads; near-ties at a burst's edges may swap
    assert clear.sum() >= 20 and np.array_equal(quantised.argmax(1)[clear], reference.argmax(1)[clear])


def test_the_export_command_writes_a_streaming_file_and_checks_its_options(detector, tmp_path, capsys):
    path = tmp_path / "run" / "tones.keras"
    path.parent.mkdir()
    detector.save(path)
    assert main(["export", str(path), "--streaming", "--hop", "0.016"]) == 0
    written = tmp_path / "run" / "model_streaming.tflite"
    assert written.exists() and "model_streaming.tflite" in capsys.readouterr().out
    metadata = json.loads(sidecar_path(written).read_text())
    assert metadata["streaming"]["hop_samples"] == 256 and metadata["labels"] == ["0", "1", "2"]
    assert main(["export", str(path), "--hop", "0.02"]) == 2
    assert "add --streaming" in capsys.readouterr().err
    assert main(["export", str(path), "--streaming", "--hop", "0.01"]) == 2
    assert "not a whole number of its front end's frames (128 samples, 8 ms)" in capsys.readouterr().err
    with pytest.raises(CoughclfError, match="exported for a hop of 256 samples"):
        load_stream(written, hop_seconds=0.024)


def test_a_window_export_is_not_taken_for_a_streaming_one(tmp_path, detector):
    from coughclf.export import export_tflite

    out = export_tflite(detector, tmp_path / "window.tflite", labels=TONE_LABELS)
    with pytest.raises(CoughclfError, match="is a window model, not a streaming one; export the run with"):
        load_stream(out)
