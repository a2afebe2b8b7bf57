"""YAMNet: its front end against tf.signal, its parameter count, the Keras 2 .h5 layout, serialisation, JAX.

The released TFLite model's parity is in tests/test_yamnet_tflite.py.
"""

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from coughclf.errors import CoughclfError
from coughclf.layers.yamnet_frontend import SpectrogramPatches, YamnetLogMel, htk_mel_matrix, patch_count
from coughclf.models import build
from coughclf.models.common import trainable_params
from coughclf.models.yamnet import AUDIOSET_CLASSES, BATCH_NORM_EPSILON, LAYERS, REPORT_PARAMS
from jax_subprocess import run_on_jax


def reference_log_mel(waveform):
    """features.py of the research release: pad_waveform, then log(|tf.signal.stft| @ mel + 0.001)."""
    samples = len(waveform)
    padding = max(0, 15600 - samples)
    after_first = max(samples, 15600) - 15600
    padding += 7680 * -(-after_first // 7680) - after_first
    magnitude = tf.abs(tf.signal.stft(np.pad(waveform, [0, padding]), 400, 160, 512))
    mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0)
    return np.log(np.asarray(magnitude @ mel) + 0.001)


def test_mel_matrix_is_tf_signals():
    ours = htk_mel_matrix(64, 257, 16000, 125.0, 7500.0)
    theirs = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0).numpy()
    assert ours.shape == (257, 64)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # TF computes it in float32
    assert not ours[0].any()  # the DC bin is left out


@pytest.mark.parametrize("samples", [5000, 15600, 16000, 40000])
@pytest.mark.parametrize("stft, projection", [("fft", "dense"), ("matmul", "banded")])
def test_log_mel_is_the_release_front_end(samples, stft, projection):
    waveforms = np.random.default_rng(samples).normal(0, 0.1, (2, samples)).astype("float32")
    ours = np.asarray(YamnetLogMel(stft=stft, mel_projection=projection)(waveforms))
    reference = np.stack([reference_log_mel(waveform) for waveform in waveforms])
    assert ours.shape == reference.shape == (2, 96 + 48 * (patch_count(samples) - 1), 64)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_patches_are_tf_signal_frames():
    log_mel = np.random.default_rng(0).normal(size=(2, 250, 64)).astype("float32")
    patches = np.asarray(SpectrogramPatches()(log_mel))
    reference = tf.signal.frame(log_mel, 96, 48, axis=1).numpy()
    assert patches.shape == reference.shape == (2, 4, 96, 64)
    np.testing.assert_array_equal(patches, reference)


def test_patch_count_follows_pad_waveform():
    assert [patch_count(n) for n in (1, 15600, 15601, 23280, 23281, 80000)] == [1, 1, 2, 2, 3, 10]


def test_parameter_count_is_the_released_models():
    model = build("yamnet")
    assert trainable_params(model) == REPORT_PARAMS == 3_729_481
    # The shapes of the released tensors: layer1 3x3x1x32, then depthwise 3x3xC and pointwise CxF, a
    # shift per batch-norm channel, and the 1024 x 521 classifier with its bias.
    expected, channels = 0, 1
    for index, (_, filters) in enumerate(LAYERS, start=1):
        if index == 1:
            expected += 9 * channels * filters + filters
        else:
            expected += 9 * channels + channels + channels * filters + filters
        channels = filters
    assert expected + 1024 * AUDIOSET_CLASSES + AUDIOSET_CLASSES == REPORT_PARAMS


@pytest.mark.parametrize("head, pooling, width", [("linear", "mean", 1024), ("mlp", "attention", 1024),
                                                  ("linear", "mean_max", 2048)])
def test_task_heads(head, pooling, width):
    model = build("yamnet", num_classes=3, clip_seconds=2.0, head=head, pooling=pooling, hidden_units=8,
                  dropout=0.1)
    assert model.get_layer("embeddings").output.shape == (None, 4, 1024)  # 2 s: padded to 4 patches
    assert model.get_layer("head_pooling").output.shape == (None, width)
    probabilities = np.asarray(model.predict_on_batch(np.zeros((2, 32000), "float32")))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_bad_options_fail_naming_the_fix():
    with pytest.raises(CoughclfError, match="model.head = 'linear' or 'mlp'"):
        build("yamnet", num_classes=3, head="audioset")
    with pytest.raises(CoughclfError, match="pooling = 'median'"):
        build("yamnet", num_classes=3, pooling="median")
    with pytest.raises(CoughclfError, match="data.sample_rate = 16000"):
        build("yamnet", sample_rate=8000)


# --- the research release's yamnet.h5 -----------------------------------------------------------

def random_release_weights(seed=0):
    """Random weights of every tensor of the research release's yamnet_frames model, by Keras 2 name."""
    rng = np.random.default_rng(seed)
    weights, channels = {}, 1

    def batch_norm(prefix, width):
        weights[f"{prefix}/bn/beta:0"] = rng.normal(0, 0.1, width)
        weights[f"{prefix}/bn/moving_mean:0"] = rng.normal(0, 0.1, width)
        weights[f"{prefix}/bn/moving_variance:0"] = rng.uniform(0.5, 1.5, width)

    for index, (_, filters) in enumerate(LAYERS, start=1):
        if index == 1:
            weights["layer1/conv/kernel:0"] = rng.normal(0, 0.5, (3, 3, 1, filters))
            batch_norm("layer1/conv", filters)
        else:
            weights[f"layer{index}/depthwise_conv/depthwise_kernel:0"] = rng.normal(0, 0.4, (3, 3, channels, 1))
            batch_norm(f"layer{index}/depthwise_conv", channels)
            weights[f"layer{index}/pointwise_conv/kernel:0"] = rng.normal(0, 1 / np.sqrt(channels),
                                                                           (1, 1, channels, filters))
            batch_norm(f"layer{index}/pointwise_conv", filters)
        channels = filters
    weights["dense/kernel:0"] = rng.normal(0, 0.05, (1024, AUDIOSET_CLASSES))
    weights["dense/bias:0"] = rng.normal(0, 0.1, AUDIOSET_CLASSES)
    return {name: value.astype("float32") for name, value in weights.items()}


def write_keras2_h5(path, weights):
    """``weights`` as tf.keras 2's ``model.save_weights("yamnet.h5")`` lays them out for yamnet_frames."""
    layers = {}
    for name in weights:
        layers.setdefault(name.rsplit("/", 1)[0], []).append(name)
    names = ["input_1", "tf_op_layer_Pad", "tf_op_layer_MatMul", "reshape", *layers, "global_average_pooling2d"]
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [name.encode() for name in names]
        file.attrs["backend"] = b"tensorflow"
        file.attrs["keras_version"] = b"2.3.0-tf"
        for layer in names:
            group = file.create_group(layer)
            group.attrs["weight_names"] = [name.encode() for name in layers.get(layer, [])]
            for name in layers.get(layer, []):
                group.create_dataset(name, data=weights[name])


def reference_forward(weights, waveform):
    """yamnet.py's network in tf.nn ops on one waveform: ``(per-patch scores, embeddings)``."""
    patches = tf.signal.frame(reference_log_mel(waveform), 96, 48, axis=0)[..., None]

    def batch_norm(x, prefix):
        mean, variance = weights[f"{prefix}/bn/moving_mean:0"], weights[f"{prefix}/bn/moving_variance:0"]
        return tf.nn.relu((x - mean) / tf.sqrt(variance + BATCH_NORM_EPSILON) + weights[f"{prefix}/bn/beta:0"])

    x = patches
    for index, (stride, _) in enumerate(LAYERS, start=1):
        if index == 1:
            x = batch_norm(tf.nn.conv2d(x, weights["layer1/conv/kernel:0"], stride, "SAME"), "layer1/conv")
            continue
        prefix = f"layer{index}"
        x = tf.nn.depthwise_conv2d(x, weights[f"{prefix}/depthwise_conv/depthwise_kernel:0"],
                                   [1, stride, stride, 1], "SAME")
        x = batch_norm(x, f"{prefix}/depthwise_conv")
        x = batch_norm(tf.nn.conv2d(x, weights[f"{prefix}/pointwise_conv/kernel:0"], 1, "SAME"),
                       f"{prefix}/pointwise_conv")
    embeddings = tf.reduce_mean(x, axis=[1, 2])
    return tf.sigmoid(embeddings @ weights["dense/kernel:0"] + weights["dense/bias:0"]).numpy(), embeddings.numpy()


def test_release_h5_loads_exactly(tmp_path):
    weights = random_release_weights()
    write_keras2_h5(tmp_path / "yamnet.h5", weights)
    model = build("yamnet", weights=tmp_path / "yamnet.h5", clip_seconds=2.0)
    waveforms = np.random.default_rng(1).normal(0, 0.1, (2, 32000)).astype("float32")
    tagger = keras.Model(model.inputs, [model.get_layer("patch_scores").output, model.get_layer("embeddings").output])
    scores, embeddings = (np.asarray(value) for value in tagger.predict_on_batch(waveforms))
    for waveform, patch_scores, patch_embeddings in zip(waveforms, scores, embeddings):
        reference_scores, reference_embeddings = reference_forward(weights, waveform)
        np.testing.assert_allclose(patch_scores, reference_scores, atol=1e-5)
        np.testing.assert_allclose(patch_embeddings, reference_embeddings, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model.predict_on_batch(waveforms)), scores.mean(axis=1), atol=1e-6)


def test_release_h5_with_a_new_head_and_errors(tmp_path):
    weights = random_release_weights()
    write_keras2_h5(tmp_path / "yamnet.h5", weights)
    model = build("yamnet", weights=tmp_path / "yamnet.h5", num_classes=4, freeze="backbone")
    np.testing.assert_array_equal(np.asarray(model.get_layer("layer3_pointwise_conv").kernel),
                                  weights["layer3/pointwise_conv/kernel:0"])
    assert [layer.name for layer in model.layers if layer.trainable_weights] == ["classifier"]

    del weights["layer7/pointwise_conv/kernel:0"]
    write_keras2_h5(tmp_path / "truncated.h5", weights)
    with pytest.raises(CoughclfError, match="truncated.h5: no tensor 'layer7/pointwise_conv/kernel:0'"):
        build("yamnet", weights=tmp_path / "truncated.h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(CoughclfError, match="broken.h5 is not a readable Keras HDF5 weights file"):
        build("yamnet", weights=tmp_path / "broken.h5")
    with pytest.raises(CoughclfError, match="missing.h5 do not exist"):
        build("yamnet", weights=tmp_path / "missing.h5")


def test_keras_file_round_trip_in_safe_mode(tmp_path):
    model = build("yamnet", num_classes=3, clip_seconds=1.5, head="mlp", pooling="attention", hidden_units=8)
    waveforms = np.random.default_rng(2).normal(0, 0.1, (2, 24000)).astype("float32")
    model.save(tmp_path / "yamnet.keras")
    loaded = keras.saving.load_model(tmp_path / "yamnet.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(waveforms)),
                               np.asarray(model.predict_on_batch(waveforms)), atol=1e-6)


JAX_CODE = """
import json, sys
import numpy as np
from coughclf.models import build
model = build("yamnet", clip_seconds=1.0)
model.load_weights(sys.argv[1])
waveforms = np.random.default_rng(3).normal(0, 0.1, (2, 16000)).astype("float32")
print(json.dumps(np.asarray(model.predict_on_batch(waveforms)).tolist()))
"""


def test_runs_under_jax_as_under_tensorflow(tmp_path):
    model = build("yamnet", clip_seconds=1.0)
    model.save_weights(tmp_path / "yamnet.weights.h5")
    waveforms = np.random.default_rng(3).normal(0, 0.1, (2, 16000)).astype("float32")
    finished = run_on_jax(JAX_CODE, tmp_path / "yamnet.weights.h5")
    assert finished.returncode == 0, finished.stderr[-2000:]
    on_jax = np.array(json.loads(finished.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(on_jax, np.asarray(model.predict_on_batch(waveforms)), atol=1e-5)
