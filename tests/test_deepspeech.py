"""The lightweight DeepSpeech2 of report 5: parameter formula, lengths, padding, export model."""

import keras
import numpy as np
import pytest

from coughclf import ctc, models
from coughclf.models.deepspeech import deepspeech2_lite_params, inference_model, output_lengths
from coughclf.text import NUM_CLASSES

TINY = {"conv_filters": 12, "conv_kernel": 5, "rnn_units": 8, "rnn_layers": 2, "activation": "tanh"}
TINY_FRONTEND = {"n_fft": 256, "win_length": 200, "hop_length": 80, "n_mels": 16}


def tiny_waveform_model(**options):
    return models.build("deepspeech2_lite", input_mode="waveform", sample_rate=8000, frontend=TINY_FRONTEND,
                        **{**TINY, **options})


def padded_audio(lengths, seed=0):
    rng = np.random.default_rng(seed)
    audio = np.zeros((len(lengths), max(lengths)), "float32")
    for row, length in enumerate(lengths):
        audio[row, :length] = 0.3 * np.sin(np.arange(length) * (0.05 + 0.02 * row)) + 0.05 * rng.standard_normal(length)
    return audio


def test_registered_as_a_ctc_model_with_the_formula_count():
    spec = models.spec("deepspeech2_lite")
    assert spec.task == "ctc"
    # 80 features, 256 filters of width 11, 5 layers of 256 units, 28 characters + blank.
    assert spec.report_params == (80 * 11 * 256 + 256 + 2 * 256
                                  + (256 * 256 + 256 + 2 * 256 ** 2) * 5
                                  + 256 * 29 + 29) == 1_217_821


@pytest.mark.parametrize("options", [{}, {"num_features": 40, "conv_filters": 64, "conv_kernel": 7,
                                          "rnn_units": 48, "rnn_layers": 3}])
def test_trainable_parameters_equal_the_formula(options):
    model = models.build("deepspeech2_lite", **options)
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    assert trainable == deepspeech2_lite_params(**options)
    rnn = model.get_layer("birnn_2")
    h = rnn.units
    assert rnn.count_params() == h * h + h + 2 * h * h


def test_features_mode_shapes_and_logit_lengths_follow_the_stride():
    model = models.build("deepspeech2_lite", num_features=10, **TINY)
    features = np.random.default_rng(0).standard_normal((3, 21, 10)).astype("float32")
    lengths = np.array([21, 20, 7], "int32")
    outputs = model({"features": features, "length": lengths})
    assert outputs["log_probs"].shape == (3, output_lengths(21, conv_kernel=5, conv_stride=2), NUM_CLASSES)
    assert np.asarray(outputs["logit_length"]).tolist() == [11, 10, 4]
    assert output_lengths(lengths, conv_kernel=5, conv_stride=2).tolist() == [11, 10, 4]
    np.testing.assert_allclose(np.exp(np.asarray(outputs["log_probs"])).sum(-1), 1.0, atol=1e-5)


def test_waveform_batch_padding_changes_no_valid_frame():
    model = tiny_waveform_model()
    lengths = [4000, 2561, 1200]
    audio = padded_audio(lengths)
    batch = model({"audio": audio, "length": np.array(lengths, "int32")})
    for row, length in enumerate(lengths):
        alone = model({"audio": audio[row:row + 1, :length], "length": np.array([length], "int32")})
        frames = int(np.asarray(alone["logit_length"])[0])
        assert frames == int(np.asarray(batch["logit_length"])[row]) == alone["log_probs"].shape[1]
        np.testing.assert_allclose(np.asarray(batch["log_probs"])[row, :frames], np.asarray(alone["log_probs"])[0],
                                   atol=1e-5)


def test_inference_model_matches_and_numpy_greedy_decoding_matches_keras():
    model = tiny_waveform_model()
    audio = padded_audio([3000, 3000], seed=1)
    reference = model({"audio": audio, "length": np.array([3000, 3000], "int32")})
    exported = inference_model(model, 3000)
    assert exported.input_shape == (None, 3000)
    log_probs = np.asarray(exported(audio))
    np.testing.assert_allclose(log_probs, np.asarray(reference["log_probs"]), atol=1e-5)
    keras_texts = ctc.decode_batch(reference["log_probs"], reference["logit_length"], "greedy")
    assert [ctc.greedy_decode_numpy(example) for example in log_probs] == keras_texts


def test_save_and_load_round_trip_with_safe_mode(tmp_path):
    model = tiny_waveform_model()
    inputs = {"audio": padded_audio([2000, 1500], seed=2), "length": np.array([2000, 1500], "int32")}
    model.save(tmp_path / "ds2.keras")
    loaded = keras.saving.load_model(tmp_path / "ds2.keras", safe_mode=True)
    assert isinstance(loaded, ctc.CTCModel)
    np.testing.assert_array_equal(np.asarray(loaded(inputs)["log_probs"]), np.asarray(model(inputs)["log_probs"]))
    exported = inference_model(loaded, 2000)
    np.testing.assert_allclose(np.asarray(exported(inputs["audio"][:1])),
                               np.asarray(model(inputs)["log_probs"])[:1], atol=1e-5)


def test_fit_lowers_the_ctc_loss_of_padded_batches():
    keras.utils.set_random_seed(0)
    model = models.build("deepspeech2_lite", num_features=6, **{**TINY, "rnn_units": 16})
    model.compile(keras.optimizers.Adam(0.01))
    rng = np.random.default_rng(3)
    features = rng.standard_normal((4, 30, 6)).astype("float32")
    lengths = np.array([30, 24, 18, 30], "int32")
    labels = np.array([[3, 4, 5], [6, 7, 0], [8, 0, 0], [9, 9, 10]], "int32")
    inputs = {"features": features, "length": lengths}
    before = model.evaluate(inputs, labels, verbose=0)
    model.fit(inputs, labels, epochs=30, batch_size=4, verbose=0)
    after = model.evaluate(inputs, labels, verbose=0)
    assert after < 0.5 * before
    expected = np.mean(np.asarray(ctc.ctc_loss(labels, model(inputs)["log_probs"], model(inputs)["logit_length"])))
    assert after == pytest.approx(float(expected), rel=1e-4)


def test_bad_input_mode_is_a_clear_error():
    from coughclf.errors import CoughclfError

    with pytest.raises(CoughclfError, match="input_mode"):
        models.build("deepspeech2_lite", input_mode="spectrogram")
