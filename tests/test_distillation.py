"""Knowledge distillation's parts: the loss against its formula, the exact logits of softmax models, what the
teacher hears, which teacher a split gets, and the [distill] table checked at load."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from coughclf.config import load_config
from coughclf.distillation.model import Distiller, TeacherLogProbabilities, distillation_loss, logits_model
from coughclf.distillation.teachers import TeacherSource, class_positions, describe_teacher, teacher_members
from coughclf.errors import CoughclfError
from coughclf.layers.augment import ColouredNoise

REPO = Path(__file__).resolve().parents[1]


def _softmax(values):
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _log_softmax(values):
    return np.log(_softmax(values))


# --- the loss ------------------------------------------------------------------------------------

STUDENT = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [0.3, 0.3, -0.2]])
TEACHER = np.array([[2.0, 1.0, 0.0], [0.5, 0.5, 1.0], [-1.0, 4.0, 0.0]])
TARGETS = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.8, 0.0]])  # labelled, unlabelled, mixed
WEIGHTS = np.array([1.0, 2.0, 0.5])
T, ALPHA = 2.0, 0.7


def test_the_loss_and_its_gradient_are_hintons_formula_on_a_hand_example():
    import tensorflow as tf

    # By hand (NumPy, float64): KL(softmax(t/T) || softmax(s/T)) T^2 and the labels' cross-entropy.
    teacher_p = _softmax(TEACHER / T)
    kl = (teacher_p * (np.log(teacher_p) - _log_softmax(STUDENT / T))).sum(axis=1)
    hard = -(TARGETS * _log_softmax(STUDENT)).sum(axis=1)
    per_example = ALPHA * T * T * kl + (1 - ALPHA) * hard
    expected = np.mean(WEIGHTS * per_example)
    # d/ds: alpha*T*(softmax(s/T) - softmax(t/T)) + (1 - alpha)*(softmax(s)*sum(y) - y), weighted, over the batch.
    expected_gradient = (WEIGHTS[:, None] / len(STUDENT)) * (
        ALPHA * T * (_softmax(STUDENT / T) - teacher_p)
        + (1 - ALPHA) * (_softmax(STUDENT) * TARGETS.sum(axis=1, keepdims=True) - TARGETS))
    assert hard[1] == 0  # the unlabelled clip takes the soft loss only

    student = tf.Variable(STUDENT, dtype=tf.float64)
    with tf.GradientTape() as tape:
        loss = distillation_loss(tf.constant(TARGETS), student, tf.constant(TEACHER), T, ALPHA,
                                 tf.constant(WEIGHTS))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(loss, student).numpy(), expected_gradient, rtol=1e-10, atol=1e-14)
    # Figures of the example, so that a change of formula cannot hide in the NumPy above.
    np.testing.assert_allclose(expected, 0.9318346, rtol=1e-6)  # also computed with the math module


def test_alpha_zero_is_the_labels_cross_entropy_and_one_the_soft_loss_alone():
    plain = -(TARGETS * _log_softmax(STUDENT)).sum(axis=1).mean()
    assert float(distillation_loss(TARGETS, STUDENT, TEACHER, T, 0.0)) == pytest.approx(plain, rel=1e-6)
    same = float(distillation_loss(TARGETS, TEACHER, TEACHER, T, 1.0))
    assert same == pytest.approx(0.0, abs=1e-6)  # a student that matches its teacher has no soft loss


# --- logits of softmax models ----------------------------------------------------------------------

def _dense_softmax(inputs, kernel, bias=None, name="classifier"):
    """``Input(inputs) -> Dense(softmax)`` with the given weights."""
    audio = keras.Input((inputs,), name="audio")
    layer = keras.layers.Dense(kernel.shape[1], activation="softmax", name=name, use_bias=bias is not None)
    model = keras.Model(audio, layer(audio), name=name)
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    return model


def test_logits_come_from_the_softmax_layer_exactly_even_where_probabilities_underflow():
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(4, 3)).astype("float32") * 100, rng.normal(size=3).astype("float32")
    model = _dense_softmax(4, kernel, bias)
    x = rng.normal(size=(5, 4)).astype("float32")
    logits = np.asarray(logits_model(model)(x))
    np.testing.assert_allclose(logits, x @ kernel + bias, rtol=1e-5, atol=1e-3)
    assert (np.asarray(model(x)) == 0).any()  # log(p) would be -inf here; the logits are not
    assert np.isfinite(logits).all()


def test_a_model_that_does_not_end_in_a_softmax_is_refused():
    audio = keras.Input((4,))
    model = keras.Model(audio, keras.layers.Dense(3, activation="sigmoid", name="scores")(audio))
    with pytest.raises(CoughclfError, match="does not end in a softmax layer .*scores"):
        logits_model(model)


def test_a_fold_ensemble_teaches_the_log_of_its_mean_probability_at_the_datas_classes():
    rng = np.random.default_rng(1)
    members = [_dense_softmax(4, rng.normal(size=(4, 3)).astype("float32") * 3, name=f"fold{i}") for i in range(3)]
    x = rng.normal(size=(6, 4)).astype("float32")
    teacher = TeacherLogProbabilities(members, positions=[2, 0])
    mean = np.mean([_softmax(x.astype("float64") @ member.get_layer(f"fold{i}").get_weights()[0])
                    for i, member in enumerate(members)], axis=0)
    np.testing.assert_allclose(np.asarray(teacher(x)), np.log(mean)[:, [2, 0]], rtol=1e-5)


def test_a_shorter_example_is_centred_in_the_teachers_longer_input():
    kernel = np.stack([np.arange(6), np.zeros(6)], axis=1).astype("float32")  # logit 0: sum of i * x_i
    teacher = TeacherLogProbabilities([_dense_softmax(6, kernel)], positions=[0, 1], samples=6)
    heard = np.asarray(teacher(np.ones((1, 4), "float32")))
    np.testing.assert_allclose(heard, _log_softmax(np.array([[1 + 2 + 3 + 4, 0.0]])), rtol=1e-5, atol=1e-7)


# --- what the teacher hears ------------------------------------------------------------------------

def _noisy_student(kernel):
    """A student whose logits reveal its input: waveform noise, then the same Dense as the teacher's."""
    audio = keras.Input((16,), name="audio")
    noisy = ColouredNoise(colours=["white"], snr_db=(0.0, 0.0), seed=3)(audio)
    layer = keras.layers.Dense(2, activation="softmax", use_bias=False, name="classifier")
    model = keras.Model(audio, layer(noisy), name="student")
    layer.set_weights([kernel])
    return model


@pytest.mark.parametrize("teacher_input", ["augmented", "clean"])
def test_the_teacher_hears_the_students_augmented_waveform_from_one_draw_or_the_clean_batch(teacher_input):
    kernel = np.random.default_rng(2).normal(size=(16, 2)).astype("float32")
    student = _noisy_student(kernel)
    teacher = TeacherLogProbabilities([_dense_softmax(16, kernel)], positions=[0, 1])
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5, teacher_input=teacher_input)
    x = np.random.default_rng(3).normal(size=(4, 16)).astype("float32")
    trained = distiller(x, training=True)
    student_view = _log_softmax(np.asarray(trained["student"]).astype("float64"))
    clean_view = _log_softmax(x.astype("float64") @ kernel)
    if teacher_input == "augmented":  # the very noise the student got (one draw feeds both)
        np.testing.assert_allclose(np.asarray(trained["teacher"]), student_view, rtol=1e-4, atol=1e-5)
        assert not np.allclose(student_view, clean_view, atol=1e-2)
    else:
        np.testing.assert_allclose(np.asarray(trained["teacher"]), clean_view, rtol=1e-4, atol=1e-5)
    evaluated = distiller(x, training=False)  # evaluation: the student alone, no augmentation, no teacher
    assert set(evaluated) == {"probabilities"}
    np.testing.assert_allclose(np.asarray(evaluated["probabilities"]), _softmax(x @ kernel), rtol=1e-5)


def test_the_teacher_stays_frozen_in_inference_mode_while_the_student_learns(tmp_path):
    audio = keras.Input((16,), name="audio")
    normalised = keras.layers.BatchNormalization(name="teacher_bn")(keras.layers.Dropout(0.5)(audio))
    teacher_model = keras.Model(audio, keras.layers.Dense(2, activation="softmax", name="head")(normalised))
    teacher_model.trainable = False
    before = [weight.numpy().copy() for weight in teacher_model.weights]
    student = _noisy_student(np.zeros((16, 2), "float32"))
    distiller = Distiller(student, TeacherLogProbabilities([teacher_model], [0, 1]), temperature=2.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy())
    x = np.random.default_rng(4).normal(size=(8, 16)).astype("float32")
    distiller.fit(x, np.eye(2)[[0, 1] * 4], epochs=2, batch_size=4, verbose=0)
    assert all(np.array_equal(old, new.numpy()) for old, new in zip(before, teacher_model.weights))
    assert np.abs(student.get_layer("classifier").get_weights()[0]).sum() > 0
    distiller.save(tmp_path / "best.keras")  # the student alone
    saved = keras.saving.load_model(tmp_path / "best.keras", safe_mode=True)
    assert [layer.name for layer in saved.layers] == [layer.name for layer in student.layers]


# --- which teacher a split gets --------------------------------------------------------------------

FOLDS = [{"train": ["b", "c"], "validation": ["d"], "test": ["a"]},
         {"train": ["a", "c"], "validation": ["d"], "test": ["b"]},
         {"train": ["a", "b", "d"], "validation": [], "test": ["c"]}]


class _Config(dict):
    source = "student.toml"


def test_each_cv_fold_learns_only_from_the_teachers_model_that_held_out_its_test_clips():
    teacher = TeacherSource("cv", "teacher-cv", ["x", "y"], [f"teacher-cv/fold-{i}" for i in range(3)], FOLDS)
    student_folds = [{"train": ["c", "d"], "validation": ["b"], "test": ["a"]}, *FOLDS[1:]]
    for index, split in enumerate(student_folds):
        members = teacher_members(_Config(), teacher, split)
        assert members == [f"teacher-cv/fold-{index}"]
        seen = set(FOLDS[index]["train"]) | set(FOLDS[index]["validation"])
        assert not seen & set(split["test"])  # the teacher never trained on the student's test part
    other_data = {"train": ["p"], "validation": [], "test": ["q"]}  # clips no fold of the teacher knows
    assert teacher_members(_Config(), teacher, other_data) == teacher.runs  # the whole ensemble
    with pytest.raises(CoughclfError, match="fold definitions differ.*split.method, k, seed"):
        teacher_members(_Config(), teacher, {"train": ["c", "d"], "validation": [], "test": ["a", "b"]})


def test_a_run_teacher_that_trained_on_a_test_clip_is_refused():
    teacher = TeacherSource("run", "teacher-run", ["x", "y"], ["teacher-run"], [FOLDS[0]])
    assert teacher_members(_Config(), teacher, {"train": ["b"], "validation": [], "test": ["a"]}) == ["teacher-run"]
    with pytest.raises(CoughclfError, match="trained on 1 of this student's test clips .*'c'"):
        teacher_members(_Config(), teacher, {"train": ["a"], "validation": [], "test": ["c"]})


def test_classes_are_matched_by_name_and_a_class_the_teacher_lacks_is_an_error():
    assert class_positions(["dog", "rain", "cat", "sea"], ["cat", "dog"], "s.toml") == [2, 0]
    with pytest.raises(CoughclfError, match=r"knows nothing of the data's classes \['bird'\]"):
        class_positions(["dog", "cat"], ["bird", "cat"], "s.toml")


# --- [distill] at load -----------------------------------------------------------------------------

def _write(tmp_path, distill, model="cough_small_cnn", extra=""):
    path = tmp_path / "student.toml"
    path.write_text(f'[data]\ndataset = "folder"\ndata_dir = "{tmp_path}"\n{extra}\n[model]\nname = "{model}"\n'
                    f"[distill]\n{distill}\n")
    return path


@pytest.mark.parametrize("distill, message", [
    ("temperature = 0", "distill.temperature = 0.0 must be > 0"),
    ("alpha = 1.5", r"distill.alpha = 1.5 must be in \[0, 1\]"),
    ('teacher = "t"\nteacher_input = "mixed"', "distill.teacher_input = 'mixed' is not one of"),
    ("teacher = 3", "distill.teacher must be a string or a table"),
    ('teacher = "  "', "distill.teacher is empty"),
    ('teacher = { weights = "w.pth" }', "distill.teacher.model is required"),
    ('teacher = { model = "resnet18", weights = "w.pth", frams = 3 }', r"unknown key 'distill.teacher.frams'"),
    ('teacher = { model = "kws_cnn", weights = "w.pth" }', "reads no published checkpoint"),
    ('teacher = { model = "deepspeech2_lite", weights = "w" }', "a teacher gives class probabilities"),
    ('teacher = "t"\nteacher_classes = ["a", "a"]', "must be distinct class names"),
    ('teacher = "t"\nunlabelled = "folder"', "distill.unlabelled must be a list, got 'folder'"),
    ('teacher = "t"\nunlabelled = [""]', r"distill.unlabelled = \[''\] must be a list of paths"),
    ('teacher = "t"\ntemperatur = 2', "unknown key 'distill.temperatur' \\(did you mean 'temperature'"),
])
def test_a_bad_distill_table_fails_at_load_naming_the_key_and_the_file(tmp_path, distill, message):
    with pytest.raises(CoughclfError, match=message) as raised:
        load_config(_write(tmp_path, distill))
    assert "student.toml" in str(raised.value)


def test_a_ctc_student_and_unlabelled_audio_beside_metadata_are_refused_at_load(tmp_path):
    with pytest.raises(CoughclfError, match=r"speech \(ctc\) .*out of scope"):
        load_config(_write(tmp_path, 'teacher = "t"', model="deepspeech2_lite"))
    with pytest.raises(CoughclfError, match="no manifest metadata"):
        load_config(_write(tmp_path, 'teacher = "t"\nunlabelled = ["u"]', extra='metadata = ["meta_age"]'))


def test_the_table_teacher_round_trips_through_a_run_folders_config(tmp_path):
    from coughclf.config import dump_config

    config = load_config(_write(tmp_path, 'teacher = { model = "resnet18", weights = "w.pth", frames = 40 }'))
    assert config["distill"]["teacher"] == {"model": "resnet18", "weights": "w.pth", "frames": 40}
    dump_config(config, tmp_path / "again.toml")
    assert load_config(tmp_path / "again.toml")["distill"] == config["distill"]


def test_a_missing_or_unfinished_teacher_is_named_with_the_fix(tmp_path):
    config = load_config(_write(tmp_path, f'teacher = "{tmp_path / "nowhere"}"'))
    with pytest.raises(CoughclfError, match="is not a run folder, a CV folder or a .keras file"):
        describe_teacher(config)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text((tmp_path / "student.toml").read_text().split("[distill]")[0])
    config = load_config(_write(tmp_path, f'teacher = "{tmp_path / "run"}"'))
    with pytest.raises(CoughclfError, match="has no best.keras"):
        describe_teacher(config)
    keras_file = tmp_path / "teacher.keras"
    _dense_softmax(4, np.ones((4, 2), "float32")).save(keras_file)
    config = load_config(_write(tmp_path, f'teacher = "{keras_file}"'))
    with pytest.raises(CoughclfError, match="records no class names.*distill.teacher_classes"):
        describe_teacher(config)
    config = load_config(_write(tmp_path, f'teacher = "{keras_file}"\nteacher_classes = ["a", "b"]'))
    assert describe_teacher(config).classes == ["a", "b"] and describe_teacher(config).kind == "file"
    weights = json.dumps(str(tmp_path / "missing.pth"))
    config = load_config(_write(tmp_path, f"teacher = {{ model = \"resnet18\", weights = {weights} }}"))
    with pytest.raises(CoughclfError, match="distill.teacher.weights = .* does not exist"):
        describe_teacher(config)


# --- unlabelled batches ----------------------------------------------------------------------------

@pytest.mark.parametrize("ratio, expected", [(0.5, [0, 1, -1, 2, 3, -1, 4]),
                                             (2.0, [0, -1, -1, 1, -1, -1, 2, -1, -1]),
                                             (1.0, [0, -1, 1, -1])])
def test_unlabelled_batches_come_between_the_labelled_ones_at_the_ratio_and_the_epoch_ends_with_them(ratio,
                                                                                                     expected):
    import tensorflow as tf

    from coughclf.distillation.unlabelled import interleave

    labelled = tf.data.Dataset.range(max(expected) + 1)
    unlabelled = tf.data.Dataset.from_tensors(tf.constant(-1, tf.int64)).repeat()
    batches = interleave(labelled, unlabelled, ratio)
    assert [int(value) for value in batches] == expected
    assert int(batches.cardinality()) == len(expected)  # Keras knows the epoch's length
