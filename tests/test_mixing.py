"""Batch mixing (coughclf.mixing): what mixup, between-class learning and label smoothing do to batches.

The reference for between-class mixing is a NumPy transcription of the paper's own
``compute_gain`` / ``mix`` (Tokozume et al. 2018, mil-tokyo/bc_learning_sound), one clip at
a time. Run as a script (``python tests/test_mixing.py OUT.npz``) it mixes fixed batches and
fits a tiny model on them under whatever Keras backend it runs with; the JAX test compares
those batches with TensorFlow's.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from coughclf.errors import CoughclfError
from coughclf.mixing import BatchMixing, a_weighting_db, mix_batch, mix_batches, mixing_from_augment, sound_gain_db

RATE = 16000


def paper_gain_db(sound, fs, mode="A_weighting", min_db=-80.0):
    """The paper's ``np.max(compute_gain(sound, fs))``, frame by frame."""
    n_fft = {16000: 2048, 44100: 4096}[fs]
    gains = []
    for start in range(0, len(sound) - n_fft + 1, n_fft // 2):
        frame = sound[start:start + n_fft].astype(np.float64)
        if mode == "RMSE":
            gains.append(np.mean(frame ** 2))
        else:
            power = np.abs(np.fft.rfft(np.hanning(n_fft + 1)[:-1] * frame)) ** 2
            gains.append(np.sum(power * np.power(10, a_weighting_db(fs, n_fft) / 10)))
    return float(np.max(10 * np.log10(np.maximum(np.array(gains), 10 ** (min_db / 10)))))


def paper_mix(sound1, sound2, r, fs, mode="A_weighting"):
    gain1, gain2 = paper_gain_db(sound1, fs, mode), paper_gain_db(sound2, fs, mode)
    t = 1.0 / (1 + np.power(10, (gain1 - gain2) / 20.0) * (1 - r) / r)
    return (sound1 * t + sound2 * (1 - t)) / np.sqrt(t ** 2 + (1 - t) ** 2)


def random_batch(batch=64, classes=4, samples=4000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, batch)
    labels[:classes] = np.arange(classes)  # every class present
    audio = (rng.standard_normal((batch, samples)) * rng.uniform(0.01, 0.5, (batch, 1))).astype(np.float32)
    return audio, np.eye(classes, dtype=np.float32)[labels], labels


def mixed(inputs, targets, mixing, seed=(1, 2)):
    out = mix_batch(inputs, targets, np.array(seed), mixing, RATE)
    return [value if isinstance(value, dict) else np.asarray(value) for value in out]


def batches_dataset(audio, targets, batch_size):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((audio, targets)).batch(batch_size)


def collected_ratios(mixing, batches=80):
    """The ratios of ``batches`` mixed batches of 64 (four classes)."""
    audio, targets, _ = random_batch(samples=64)
    ratios = [mixed(audio, targets, mixing, seed=(index, 7))[2] for index in range(batches)]
    return np.concatenate(ratios)


@pytest.mark.parametrize("mode", ["mixup", "between_class"])
def test_targets_sum_to_one_and_equal_the_drawn_ratio(mode):
    audio, targets, labels = random_batch()
    audio_out, targets_out, ratio, partner = mixed(audio, targets, BatchMixing(mode=mode, gain="none"))
    np.testing.assert_allclose(targets_out.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(targets_out, ratio[:, None] * targets + (1 - ratio[:, None]) * targets[partner],
                               atol=1e-6)
    differ = labels != labels[partner]
    assert differ.sum() > 20
    rows = np.arange(len(labels))
    np.testing.assert_allclose(targets_out[rows[differ], labels[differ]], ratio[differ], atol=1e-6)
    np.testing.assert_allclose(targets_out[rows[differ], labels[partner][differ]], 1 - ratio[differ], atol=1e-6)
    if mode == "mixup":
        np.testing.assert_allclose(audio_out, ratio[:, None] * audio + (1 - ratio[:, None]) * audio[partner],
                                   atol=1e-6)
        assert sorted(partner) == list(rows)  # a permutation of the batch
    else:
        assert differ.all()  # every example was paired with another class


def test_mixup_ratio_follows_beta_alpha_alpha():
    ratios = collected_ratios(BatchMixing(mode="mixup", alpha=0.4))
    assert stats.kstest(ratios, stats.beta(0.4, 0.4).cdf).pvalue > 0.01
    assert stats.kstest(ratios, "uniform").pvalue < 1e-6  # the test can tell Beta(0.4, 0.4) from uniform
    assert np.mean(ratios) == pytest.approx(0.5, abs=0.02)
    assert np.var(ratios) == pytest.approx(1 / (4 * (2 * 0.4 + 1)), abs=0.01)  # Beta(a, a) variance


def test_between_class_ratio_is_uniform_and_probability_leaves_some_unmixed():
    ratios = collected_ratios(BatchMixing(mode="between_class", gain="none"))
    assert stats.kstest(ratios, "uniform").pvalue > 0.01
    ratios = collected_ratios(BatchMixing(mode="between_class", probability=0.25), batches=40)
    unmixed = ratios == 1.0
    assert unmixed.mean() == pytest.approx(0.75, abs=0.05)
    assert stats.kstest(ratios[~unmixed], "uniform").pvalue > 0.01


def test_between_class_batch_of_one_class_is_left_as_it_is():
    audio, _, _ = random_batch(batch=8)
    targets = np.tile(np.eye(3, dtype=np.float32)[1], (8, 1))
    audio_out, targets_out, ratio, _ = mixed(audio, targets, BatchMixing(mode="between_class"))
    np.testing.assert_array_equal(ratio, 1.0)
    np.testing.assert_allclose(audio_out, audio, atol=1e-7)
    np.testing.assert_array_equal(targets_out, targets)


@pytest.mark.parametrize("gain, paper_mode", [("a_weighting", "A_weighting"), ("rms", "RMSE")])
def test_sound_gain_matches_the_papers_compute_gain(gain, paper_mode):
    rng = np.random.default_rng(3)
    time = np.arange(RATE) / RATE
    sounds = np.stack([0.5 * np.sin(2 * np.pi * 1000 * time), 0.05 * rng.standard_normal(RATE),
                       np.zeros(RATE)]).astype(np.float32)
    sounds[1, :6000] = 0.0  # quiet start: the loudest frame counts
    expected = [paper_gain_db(sound, RATE, paper_mode) for sound in sounds]
    np.testing.assert_allclose(np.asarray(sound_gain_db(sounds, RATE, gain)), expected, atol=1e-3)
    assert expected[2] == -80.0
    if gain == "rms":  # a sine's mean square is A²/2 in its frames
        assert expected[0] == pytest.approx(10 * np.log10(0.5 ** 2 / 2), abs=0.01)


def test_gain_aware_mix_matches_the_papers_mix():
    rng = np.random.default_rng(4)
    time = np.arange(RATE) / RATE
    loud = (0.6 * np.sin(2 * np.pi * 440 * time)).astype(np.float32)
    quiet = (0.02 * rng.standard_normal(RATE)).astype(np.float32)
    audio, targets = np.stack([loud, quiet]), np.eye(2, dtype=np.float32)
    audio_out, targets_out, ratio, partner = mixed(audio, targets, BatchMixing(mode="between_class"))
    np.testing.assert_array_equal(partner, [1, 0])
    for index in range(2):
        reference = paper_mix(audio[index], audio[partner[index]], ratio[index], RATE)
        np.testing.assert_allclose(audio_out[index], reference, atol=2e-5 * np.abs(reference).max())
    # the quiet sound is scaled up: a plain ratio mix would leave it ~30 dB under the loud one
    share = np.linalg.lstsq(np.stack([loud, quiet], 1), audio_out[0], rcond=None)[0]
    assert share[1] / share[0] > (1 - ratio[0]) / ratio[0] * 5
    np.testing.assert_allclose(targets_out[0], [ratio[0], 1 - ratio[0]], atol=1e-6)


def test_dict_inputs_mix_metadata_and_keep_ids():
    audio, targets, _ = random_batch(batch=16)
    metadata = np.random.default_rng(5).standard_normal((16, 3)).astype(np.float32)
    ids = np.array([f"clip{i}".encode() for i in range(16)])
    inputs = {"audio": audio, "metadata": metadata, "id": ids}
    out, _, ratio, partner = mixed(inputs, targets, BatchMixing(mode="between_class"))
    np.testing.assert_array_equal(np.asarray(out["id"]), ids)
    np.testing.assert_allclose(np.asarray(out["metadata"]),
                               ratio[:, None] * metadata + (1 - ratio[:, None]) * metadata[partner], atol=1e-6)


def test_mixup_mixes_log_mel_features_but_between_class_needs_waveforms():
    features = np.random.default_rng(6).uniform(-80, 0, (8, 20, 16)).astype(np.float32)
    targets = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    out, _, ratio, partner = mixed(features, targets, BatchMixing(mode="mixup"))
    np.testing.assert_allclose(out, ratio[:, None, None] * features + (1 - ratio[:, None, None]) * features[partner],
                               atol=1e-5)
    with pytest.raises(CoughclfError, match="waveform"):
        mixed(features, targets, BatchMixing(mode="between_class"))


def test_label_smoothing_and_class_weights_follow_the_mixed_targets():
    audio, targets, _ = random_batch(batch=32)
    weights = {0: 1.0, 1: 2.0, 2: 0.5, 3: 4.0}
    mixing = BatchMixing(mode="between_class", label_smoothing=0.1, seed=3)
    smoothed_batch = next(iter(mix_batches(batches_dataset(audio, targets, 32), mixing, sample_rate=RATE,
                                           class_weights=weights)))
    plain_batch = next(iter(mix_batches(batches_dataset(audio, targets, 32),
                                        BatchMixing(mode="between_class", seed=3), sample_rate=RATE)))
    _, smoothed, sample_weights = (np.asarray(value) for value in smoothed_batch)
    plain = np.asarray(plain_batch[1])
    np.testing.assert_allclose(smoothed, 0.9 * plain + 0.1 / 4, atol=1e-6)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(sample_weights, plain @ np.array([1.0, 2.0, 0.5, 4.0]), atol=1e-5)
    assert len(set(np.round(sample_weights, 4))) > 4  # mixtures, not just the four class weights


def test_same_seed_same_mixes_new_mixes_each_epoch():
    audio, targets, _ = random_batch(batch=64, samples=256)

    def epochs(seed):
        dataset = mix_batches(batches_dataset(audio, targets, 16), BatchMixing(mode="mixup", seed=seed),
                              sample_rate=RATE)
        return [np.concatenate([np.asarray(batch[1]) for batch in dataset]) for _ in range(2)]

    first, again, other = epochs(0), epochs(0), epochs(1)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.allclose(first[0], first[1])
    assert not np.allclose(first[0], other[0])


def test_mixes_keyed_by_epoch_are_the_epochs_whatever_came_before():
    from coughclf.epoch_keys import keyed_by_epoch

    audio, targets, _ = random_batch(batch=64, samples=256)

    def mixed_targets(epoch):
        with keyed_by_epoch() as clock:
            dataset = mix_batches(batches_dataset(audio, targets, 16), BatchMixing(mode="mixup", seed=3),
                                  sample_rate=RATE)
        clock.epoch.assign(epoch)
        return np.concatenate([np.asarray(batch[1]) for batch in dataset])

    np.testing.assert_array_equal(mixed_targets(1), mixed_targets(1))
    assert not np.allclose(mixed_targets(0), mixed_targets(1))


def test_balanced_windowed_pipeline_batches_mix_two_classes(tmp_path):
    from train_data import write_tone_cache

    from coughclf.pipeline import make_dataset

    cache = write_tone_cache(tmp_path / "cache", clips_per_class=6)
    dataset = make_dataset(cache, mode="train", clip_seconds=1.0, windows=3, window_seconds=0.5, batch_size=12,
                           balance="oversample", seed=0).map(lambda audio, label: (audio, _one_hot(label, 2)))
    batches = list(mix_batches(dataset, BatchMixing(mode="between_class"), sample_rate=RATE))
    targets = np.concatenate([np.asarray(batch[1]) for batch in batches])
    assert targets.shape == (36, 2)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert (targets.min(axis=1) > 0).mean() > 0.9  # each row holds both classes (the odd batch may have one)


def _one_hot(label, classes):
    import tensorflow as tf

    return tf.one_hot(label, classes)


@pytest.mark.parametrize("augment, message", [
    ({"mixup": True, "between_class": True}, "both set"),
    ({"mixup": {"alpah": 0.2}}, "augment.mixup.alpah"),
    ({"between_class": {"gain": "loudness"}}, "gain 'loudness'"),
    ({"mixup": {"alpha": 0}}, "alpha must be > 0"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"label_smoothing": "a bit"}, "label_smoothing"),
    ({"mixup": 0.2}, "must be true or a table"),
])
def test_bad_augment_settings_name_the_key(augment, message):
    with pytest.raises(CoughclfError, match=message) as error:
        mixing_from_augment(augment, "exp.toml")
    assert str(error.value).startswith("exp.toml: ")


def test_augment_table_splits_into_mixing_and_layers():
    augment = {"seed": 5, "random_gain": {"min_db": -3}, "between_class": {"probability": 0.5},
               "label_smoothing": 0.1}
    mixing, rest = mixing_from_augment(augment, seed=9)
    assert mixing == BatchMixing(mode="between_class", probability=0.5, label_smoothing=0.1, seed=5)
    assert rest == {"seed": 5, "random_gain": {"min_db": -3}}
    assert mixing_from_augment({"mixup": True}, seed=9)[0] == BatchMixing(mode="mixup", seed=9)
    assert not mixing_from_augment({}, seed=9)[0].active


# --- in training: [augment] keys, class weights, balanced sampling, windows ----------------------

MIXED_AUGMENT = """
[augment]
seed = 2
between_class = { gain = "a_weighting" }
label_smoothing = 0.1
random_gain = { min_db = -3, max_db = 3 }
"""
WINDOWED = ["data.clip_seconds=2.0", "data.windows=2", "data.window_seconds=1.0"]


def mixed_config(tmp_path, overrides=()):
    from train_data import write_config, write_tone_cache

    from coughclf.config import load_config

    cache = write_tone_cache(tmp_path / "cache", clips_per_class=8, seconds=2.0)
    path = write_config(tmp_path / "exp.toml", cache, epochs=1, extra=MIXED_AUGMENT)
    return load_config(path, [*WINDOWED, "train.monitor=val_loss", *overrides])


@pytest.mark.parametrize("balance", ["class_weight", "oversample"])
def test_training_batches_are_mixed_with_class_weights_or_balanced_sampling_and_windows(tmp_path, balance):
    import tensorflow as tf

    from coughclf.classification import plan_fit
    from coughclf.inputs import open_data, split_clips

    config = mixed_config(tmp_path, [f"balance.mode={balance}", "balance.formula=inverse"])
    cache = open_data(config)
    split = split_clips(config, cache)
    plan = plan_fit(config, tmp_path / "run", cache, split, tf.distribute.get_strategy())
    assert plan.class_weight is None  # weights travel with the mixed targets instead
    batch = next(iter(plan.train_data))
    targets = np.asarray(batch[1])
    assert batch[0].shape[1] == RATE  # windows of 1 s
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert targets.min() >= 0.1 / 2 - 1e-6 and (targets.min(axis=1) > 0.06).mean() > 0.5  # mixed and smoothed
    if balance == "class_weight":
        assert len(batch) == 3 and np.asarray(batch[2]).shape == (len(targets),)
    else:
        assert len(batch) == 2
    validation = next(iter(plan.validation_data))
    assert set(np.unique(np.asarray(validation[1]))) == {0.0, 1.0}  # evaluation batches stay one-hot


def test_mixing_keys_are_checked_with_the_config(tmp_path):
    from train_data import write_config, write_tone_cache

    from coughclf.config import load_config

    cache = write_tone_cache(tmp_path / "cache", clips_per_class=2)
    path = write_config(tmp_path / "exp.toml", cache, extra="\n[augment]\nmixup = { alpha = -1 }\n")
    with pytest.raises(CoughclfError, match="exp.toml: augment: .*alpha must be > 0"):
        load_config(path)
    with pytest.raises(CoughclfError, match="unknown key 'augment.mix_up'"):
        load_config(path, ["augment.mixup=false", "augment.mix_up=true"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_mixed_windowed_class_weighted_run_trains_on_both_backends(tmp_path, backend):
    pytest.importorskip(backend)
    from train_data import write_config, write_tone_cache

    cache = write_tone_cache(tmp_path / "cache", clips_per_class=8, seconds=2.0)
    path = write_config(tmp_path / "exp.toml", cache, epochs=2, extra=MIXED_AUGMENT)
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "coughclf", "train", str(path), "--run-dir", str(tmp_path / "run"),
               *[part for item in [*WINDOWED, "balance.mode=class_weight"] for part in ("--set", item)]]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    assert training["epochs_run"] == 2 and not training["terminated_on_nan"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["window_level"]["n"] == 2 * 4

# --- the same batches under JAX ------------------------------------------------------------------

def script_batches():
    """Mixed batches of fixed inputs, and the loss of a tiny model fitted on them with sample weights."""
    import keras

    # tf.data's seeded keys pair the op seed with the global one, which training sets from train.seed;
    # set it here too, or the batches depend on whatever ran before in this process.
    keras.utils.set_random_seed(0)
    audio, targets, _ = random_batch(batch=32, samples=2048, seed=8)
    mixing = BatchMixing(mode="between_class", label_smoothing=0.1, seed=4)
    dataset = mix_batches(batches_dataset(audio, targets, 16), mixing, sample_rate=RATE,
                          class_weights={0: 1.0, 1: 2.0, 2: 1.0, 3: 0.5})
    arrays = {}
    for index, (inputs, mixed_targets, weights) in enumerate(dataset):
        arrays.update({f"audio{index}": np.asarray(inputs), f"targets{index}": np.asarray(mixed_targets),
                       f"weights{index}": np.asarray(weights)})
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2048,)), keras.layers.Dense(4, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    arrays["loss"] = np.array(model.fit(dataset, epochs=2, verbose=0, shuffle=False).history["loss"])
    return arrays


def test_same_batches_under_jax(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "jax.npz"
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
    completed = subprocess.run([sys.executable, __file__, str(out)], env=environment, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    jax_arrays = np.load(out)
    assert str(jax_arrays["backend"]) == "jax"
    tensorflow_arrays = script_batches()
    for name, values in tensorflow_arrays.items():
        if name != "loss":
            np.testing.assert_allclose(jax_arrays[name], values, atol=1e-6, err_msg=name)
    assert np.isfinite(jax_arrays["loss"]).all() and jax_arrays["loss"].shape == (2,)


if __name__ == "__main__":
    import keras

    np.savez(sys.argv[1], backend=keras.backend.backend(), **script_batches())
