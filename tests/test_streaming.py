"""Streaming form (coughclf.streaming): exact against the window model on real clips, on TensorFlow and JAX;
what cannot stream is refused with the layer and the fix."""

import json

import keras
import numpy as np
import pytest
from jax_subprocess import run_on_jax
from streaming_checks import recording, stream_outputs, unsaturate, window_outputs

from coughclf.errors import CoughclfError
from coughclf.models import build
from coughclf.streaming import STREAMING_FRONTEND, streaming_form, streaming_options
from coughclf.streaming.runner import KerasStream, hop_outputs

FSDD_CLIPS = ("recordings/3_jackson_0.wav", "recordings/7_theo_12.wav", "recordings/0_nicolas_3.wav")
SPEECH_COMMANDS_CLIP = "speech_commands_v0.01/five/0a2b400e_nohash_0.wav"


def digits_recording(shared_data):
    paths = [shared_data / "fsdd" / name for name in FSDD_CLIPS]
    paths.append(next((shared_data / "speech_commands_sample").rglob("five/*.wav")))
    return recording(paths)


def assert_streams_exactly(model, audio, hop, hops):
    form = streaming_form(model, hop)
    streamed = stream_outputs(KerasStream(form), audio, hops)
    expected = window_outputs(model, audio, hop, hops)
    assert streamed.shape == expected.shape
    assert expected.std(axis=0).max() > 1e-3  # the outputs move as the audio does: the comparison means something
    np.testing.assert_allclose(streamed, expected, atol=1e-5, rtol=0)
    return form


@pytest.mark.parametrize("name", ["kws_cnn", "kws_crnn"])
def test_digit_models_stream_exactly_on_real_speech(shared_data, name):
    audio = digits_recording(shared_data)
    keras.utils.set_random_seed(0)
    model = unsaturate(build(name, **streaming_options(name)), audio)
    form = assert_streams_exactly(model, audio, hop=320, hops=60)  # 1.2 s at a 20 ms hop
    assert form.hop_samples == 320 and form.warmup_hops == 50


def test_kws_cnn_keeps_the_reports_parameter_count_and_delay(shared_data):
    from coughclf.models.common import trainable_params

    model = build("kws_cnn", **streaming_options("kws_cnn"))
    assert trainable_params(model) == 143_242
    assert tuple(model.get_layer("flatten").input.shape) == (None, 9, 4, 128)
    form = streaming_form(model)  # default hop: 20 ms, two 10 ms frames
    assert form.hop_samples == 320
    # (16000 - 1024) % 160 = 96 samples at each window's end are in no frame.
    assert form.delay_samples == 96
    assert form.states[0].name == "log_mel_state" and form.states[0].shape == (1024 - 160 + 96,)
    described = form.describe()
    assert described["warmup_hops"] == 50 and len(described["states"]) == len(form.states)
    json.dumps(described)


def test_a_cough_model_streams_exactly_on_real_coughs(shared_data):
    clips = sorted((shared_data / "covid19_cough" / "raw").glob("*.mp3"))[10:13]
    audio = recording(clips)
    keras.utils.set_random_seed(1)
    # 3 s windows (the small CNN reads 91 frames of 32 ms); a hop of 4 frames, so the layers whose strides
    # pass 4 frames run once per new column, the earlier ones once per hop.
    model = unsaturate(build("cough_small_cnn", **streaming_options("cough_small_cnn"), clip_seconds=3.0), audio)
    assert_streams_exactly(model, audio, hop=2048, hops=30)


def test_augmentation_layers_are_identities_in_the_stream(shared_data):
    from coughclf.layers.augment import build_augmentation

    audio = digits_recording(shared_data)
    waveform_layers, spec_layers = build_augmentation({"seed": 0, "random_gain": {}, "time_shift": {"max_seconds": 0.1},
                                                       "spec_augment": {"time_warp": 0}})
    model = build("kws_cnn", **streaming_options("kws_cnn"), waveform_augmentation=waveform_layers,
                  spec_augmentation=spec_layers)
    assert_streams_exactly(unsaturate(model, audio), audio, hop=320, hops=5)


def test_the_streaming_model_saves_and_loads_safely(tmp_path):
    model = build("kws_cnn", **streaming_options("kws_cnn"))
    form = streaming_form(model)
    path = tmp_path / "streaming.keras"
    form.model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, 320)).astype("float32") * 0.1,
              *(rng.standard_normal((1, *state.shape)).astype("float32") for state in form.states)]
    for saved, restored in zip(form.model.predict_on_batch(inputs), loaded.predict_on_batch(inputs)):
        np.testing.assert_array_equal(saved, restored)


def test_hops_are_cut_from_blocks_of_any_size():
    model = build("kws_cnn", **streaming_options("kws_cnn"), num_classes=3)
    stream = KerasStream(streaming_form(model))
    audio = np.random.default_rng(0).standard_normal(1000).astype("float32") * 0.1
    ends = [end for end, _ in hop_outputs(stream, [audio[:100], audio[100:750], audio[750:]])]
    assert ends == [320, 640, 960, 1280]  # the last 40 samples completed with silence
    stream.reset()
    first = [p for _, p in hop_outputs(stream, [audio[:640]])]
    stream.reset()
    again = [p for _, p in hop_outputs(stream, [audio[:320], audio[320:640]])]
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("name, options, message", [
    ("kws_cnn", {}, r"layer 'log_mel' \(LogMelSpectrogram\) computes each window's frames from the whole window "
                    r"\(center=True pads its edges; ref='max' .*train with \[frontend\] center = false, ref = 1.0, "
                    r"top_db = \"none\"; layer 'block1_conv_pad' \(ZeroPadding2D, and likewise 'block2_conv_pad', "
                    r"'block3_conv_pad', 'block4_conv_pad'\) pads the time axis .*time_padding = 0"),
    ("kws_cnn", {"time_padding": 0, "frontend": {"hop_length": 160, **STREAMING_FRONTEND, "normalize": "per_example"}},
     r"normalize='per_example' scales it by its own statistics.*normalize = \"none\"$"),
    ("cough_crnn", {"frontend": {**STREAMING_FRONTEND}},
     r"cough_crnn cannot stream: layer 'bilstm' \(Bidirectional\) runs over time in both directions.*cough_small_cnn"),
])
def test_what_cannot_stream_is_refused_with_the_layer_and_the_fix(name, options, message):
    model = build(name, input_mode="waveform", **options)
    with pytest.raises(CoughclfError, match=message):
        streaming_form(model)


def test_unidirectional_recurrence_along_time_and_odd_hops_are_refused():
    inputs = keras.Input((4000,))
    from coughclf.layers import LogMelSpectrogram

    x = LogMelSpectrogram(n_fft=256, hop_length=128, n_mels=16, **STREAMING_FRONTEND)(inputs)
    x = keras.layers.GRU(4, name="gru")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x), name="tiny_gru")
    with pytest.raises(CoughclfError, match=r"layer 'gru' \(GRU\) runs over time from a zero state"):
        streaming_form(model)
    cnn = build("kws_cnn", **streaming_options("kws_cnn"))
    with pytest.raises(CoughclfError, match=r"a hop of 300 samples is not a whole number of its front end's frames "
                                            r"\(160 samples, 10 ms\); use a multiple of 0.01 s"):
        streaming_form(cnn, 300)


def test_streaming_options_cover_the_models_that_stream():
    with pytest.raises(CoughclfError, match="cough_crnn has no streaming settings"):
        streaming_options("cough_crnn")
    options = streaming_options("cough_large_cnn")
    assert options["frontend"]["n_fft"] == 1024 and options["frontend"]["center"] is False


def test_the_streaming_recipe_trains_the_model_the_stream_needs():
    from coughclf.config import load_config
    from coughclf.inputs import model_input

    config = load_config("experiments/kws/kws_cnn_streaming.toml")
    options = streaming_options("kws_cnn")
    assert config["model"]["time_padding"] == options["time_padding"]
    frontend = model_input(config).frontend  # what it leaves out is the layer's default: None
    assert {key: frontend.get(key) for key in options["frontend"]} == options["frontend"]


JAX_PARITY = """
import sys
import keras, numpy as np
sys.path.insert(0, "tests")
from pathlib import Path
from streaming_checks import recording, stream_outputs, unsaturate, window_outputs
from coughclf.models import build
from coughclf.streaming import streaming_form, streaming_options
from coughclf.streaming.runner import KerasStream
assert keras.backend.backend() == "jax"
audio = recording([Path(sys.argv[1]) / "fsdd/recordings/3_jackson_0.wav", Path(sys.argv[1]) / "fsdd/recordings/8_yweweler_5.wav"])
keras.utils.set_random_seed(0)
model = unsaturate(build("kws_cnn", **streaming_options("kws_cnn")), audio)
streamed = stream_outputs(KerasStream(streaming_form(model, 320)), audio, 40)
expected = window_outputs(model, audio, 320, 40)
print("MAXDIFF", float(np.abs(streamed - expected).max()), float(expected.std(axis=0).max()))
"""


def test_the_stream_is_exact_on_jax_too(shared_data):
    finished = run_on_jax(JAX_PARITY, shared_data)
    assert finished.returncode == 0, finished.stderr[-3000:]
    line = next(line for line in finished.stdout.splitlines() if line.startswith("MAXDIFF"))
    difference, spread = map(float, line.split()[1:])
    assert difference <= 1e-5 and spread > 1e-3
