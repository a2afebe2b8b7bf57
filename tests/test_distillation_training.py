"""Distilled runs end to end on tiny tone data: a run, a CV and unlabelled audio teach students (TensorFlow
here, JAX in a child process), the student is a normal run folder that evaluates and exports, and a
teacher that cannot teach fails before any work."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import write_audio
from jax_subprocess import run_on_jax
from train_data import RATE, tone_pcm, write_config, write_tone_cache

from coughclf.config import load_config
from coughclf.cv import cross_validate
from coughclf.errors import CoughclfError
from coughclf.train import train

REPO = Path(__file__).resolve().parents[1]
KFOLD = 'method = "kfold"\nk = 2\nval = 0.25'
# The student's settings that distillation must carry: windows, class weights, mixup, waveform augmentation.
STUDENT = ["data.clip_seconds=2.0", "data.windows=2", "data.window_seconds=1.0", 'balance.mode="class_weight"',
           "augment.mixup={alpha=0.4}", "augment.polarity_inversion={probability=0.5}", "train.epochs=2"]


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Tone data of 2 s clips, a teacher run (random split) and a 2-fold CV teacher, trained on 1 s crops."""
    folder = tmp_path_factory.mktemp("distillation")
    cache = write_tone_cache(folder / "tones", clips_per_class=12, seconds=2.0)
    config = write_config(folder / "tones.toml", cache, epochs=2)
    folds = write_config(folder / "folds.toml", cache, epochs=1, split=KFOLD)
    run = train(load_config(config), folder / "teacher")
    cv = Path(cross_validate(load_config(folds), folder / "teacher-cv")["out_dir"])
    return folder, config, folds, run, cv


def test_a_run_teacher_trains_a_windowed_weighted_mixed_student_that_is_a_plain_run(teachers, tmp_path):
    from coughclf.classification import build_model
    from coughclf.cli import main
    from coughclf.export import flatbuffer_operators
    from coughclf.models.common import trainable_params

    folder, config, _, teacher, _ = teachers
    run = train(load_config(config, [*STUDENT, f"distill.teacher={teacher}", "distill.alpha=0.8"]), tmp_path / "s")
    training = json.loads((run / "training.json").read_text())
    distillation = training["distillation"]
    assert distillation["kind"] == "run" and distillation["members"] == [str(teacher)]
    assert distillation["alpha"] == 0.8 and distillation["teacher_input"] == "augmented"
    assert distillation["teacher_samples"] == distillation["student_samples"] == RATE  # 1 s crops, 1 s windows
    split = json.loads((run / "split.json").read_text())
    batches = -(-2 * len(split["train"]) // 8)  # 2 windows per training clip, batches of 8: each scored by the teacher
    assert distillation["batches_per_epoch"] == batches and distillation["teacher_ms_per_batch"] > 0
    assert distillation["teacher_seconds_per_epoch"] == pytest.approx(
        batches * distillation["teacher_ms_per_batch"] / 1000, abs=0.01)
    student = keras.saving.load_model(run / "best.keras", safe_mode=True)  # the student alone
    plain = build_model(load_config(config, STUDENT), num_classes=2, sample_rate=RATE)
    assert [layer.__class__ for layer in student.layers] == [layer.__class__ for layer in plain.layers]
    assert training["parameters"] == trainable_params(plain)
    assert json.loads((run / "metrics.json").read_text())["clips"] == len(split["test"])  # evaluated as any run
    for quantize in ("none", "int8"):
        out = tmp_path / f"student-{quantize}.tflite"
        assert main(["export", str(run), "--out", str(out), "--quantize", quantize]) == 0
        assert not [name for name in flatbuffer_operators(out.read_bytes()) if name.startswith("CUSTOM")]


def test_each_cv_fold_learns_from_the_teachers_same_fold_and_other_folds_are_refused_before_training(teachers,
                                                                                                     tmp_path):
    folder, _, folds, _, teacher_cv = teachers
    summary = cross_validate(load_config(folds, [f"distill.teacher={teacher_cv}"]), tmp_path / "student-cv")
    assert summary["folds"] == 2
    for index in range(2):
        fold = tmp_path / "student-cv" / f"fold-{index}"
        assert json.loads((fold / "training.json").read_text())["distillation"]["members"] == [
            str(teacher_cv / f"fold-{index}")]
        assert (json.loads((fold / "split.json").read_text())["test"]
                == json.loads((teacher_cv / f"fold-{index}" / "split.json").read_text())["test"])
    other = load_config(folds, [f"distill.teacher={teacher_cv}", "split.k=3"])
    with pytest.raises(CoughclfError, match="fold definitions differ"):
        cross_validate(other, tmp_path / "mismatch")
    assert not (tmp_path / "mismatch" / "fold-0").exists()


@pytest.mark.slow  # a student trained with unlabelled audio: ~8 s loaded
def test_unlabelled_audio_joins_between_labelled_batches_without_the_held_out_clips(teachers, tmp_path):
    folder, config, _, teacher, _ = teachers
    unlabelled = tmp_path / "unlabelled"
    test_clip = json.loads((teacher / "split.json").read_text())["test"][0]  # same split: the student's test clip
    label_index, take = int(test_clip.startswith("high")), int(test_clip.split("-")[1])
    write_audio(unlabelled / "copy" / "of_a_test_clip.wav", tone_pcm(label_index, take, 2.0), RATE, subtype="PCM_16")
    for index in range(4):
        write_audio(unlabelled / f"new-{index}.wav", tone_pcm(index % 2, 100 + index, 1.5), RATE, subtype="PCM_16")
    overrides = [f"distill.teacher={teacher}", f'distill.unlabelled=["{unlabelled}"]', "distill.unlabelled_ratio=0.5",
                 'balance.mode="class_weight"', "train.epochs=1"]
    run = train(load_config(config, overrides), tmp_path / "s")
    distillation = json.loads((run / "training.json").read_text())["distillation"]
    assert distillation["unlabelled_clips"] == 4 and distillation["unlabelled_held_out"] == 1
    labelled = -(-len(json.loads((run / "split.json").read_text())["train"]) // 8)
    assert distillation["batches_per_epoch"] == labelled + labelled // 2  # one unlabelled per two labelled


def test_a_teacher_that_cannot_teach_fails_before_the_run_folder_and_the_data(teachers, tmp_path):
    folder, config, *_ = teachers
    data = tmp_path / "data"
    write_audio(data / "low" / "a.wav", tone_pcm(0, 0), RATE, subtype="PCM_16")
    write_audio(data / "bird" / "b.wav", tone_pcm(1, 0), RATE, subtype="PCM_16")
    base = [f"data.data_dir={data}", f"data.cache={tmp_path / 'cache'}"]
    missing = load_config(config, [*base, f"distill.teacher={tmp_path / 'nowhere'}"])
    with pytest.raises(CoughclfError, match="is not a run folder, a CV folder or a .keras file"):
        train(missing, tmp_path / "run")
    other_classes = load_config(config, [*base, f"distill.teacher={teachers[3]}"])
    with pytest.raises(CoughclfError, match=r"knows nothing of the data's classes \['bird'\]"):
        train(other_classes, tmp_path / "run")
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.slow  # a student of a registry teacher: ~8 s loaded
def test_a_published_checkpoint_teaches_through_the_registry_with_its_classes_named(teachers, tmp_path):
    from torch_reference import TINY, random_ast

    folder, config, *_ = teachers
    checkpoint = tmp_path / "ast-tiny"
    random_ast(TINY).save_pretrained(checkpoint)  # its own 5-class head, as a fine-tuned checkpoint has
    teacher = f'{{ model = "ast", weights = "{checkpoint}", frames = 101 }}'  # 1.0 s: the student's clip
    overrides = [f"distill.teacher={teacher}", 'distill.teacher_classes=["a", "high", "b", "low", "c"]',
                 "train.epochs=1", "train.steps_per_epoch=1"]
    run = train(load_config(config, overrides), tmp_path / "s")
    distillation = json.loads((run / "training.json").read_text())["distillation"]
    assert distillation["kind"] == "pretrained" and distillation["teacher"] == str(checkpoint)
    assert distillation["teacher_classes"][1::2] == ["high", "low"]  # taken by name, in the data's order
    assert distillation["teacher_samples"] == 16400 and distillation["student_samples"] == 16000  # centred
    assert keras.saving.load_model(run / "best.keras", safe_mode=True).name == "cough_small_cnn"


JAX_STUDENT = """
import json, sys
import keras, numpy as np
from coughclf.cli import main
from coughclf.distillation.model import Distiller, TeacherLogProbabilities, distillation_loss
import jax

# The loss's gradient on JAX, against the same hand formula as on TensorFlow.
s, t, y = np.array([[1.0, 2.0, 0.5]]), np.array([[2.0, 1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
gradient = jax.grad(lambda logits: distillation_loss(y, logits, t, 2.0, 0.7))(s)
soft = lambda v: np.exp(v) / np.exp(v).sum()
expected = 0.7 * 2.0 * (soft(s / 2) - soft(t / 2)) + 0.3 * (soft(s) - y)
assert np.allclose(gradient, expected, atol=1e-6), (gradient, expected)

# A student with a metadata input learns beside a waveform teacher (dict batches through the training graph).
audio, metadata = keras.Input((16,), name="audio"), keras.Input((2,), name="metadata")
joined = keras.layers.Concatenate()([keras.layers.Dense(4)(audio), metadata])
student = keras.Model([audio, metadata], keras.layers.Dense(2, activation="softmax")(joined))
teacher_model = keras.Model(audio, keras.layers.Dense(2, activation="softmax")(audio))
teacher_model.trainable = False
distiller = Distiller(student, TeacherLogProbabilities([teacher_model], [1, 0]), temperature=2.0, alpha=0.5)
distiller.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
batch = {"audio": np.random.rand(8, 16).astype("float32"), "metadata": np.random.rand(8, 2).astype("float32")}
history = distiller.fit(batch, np.eye(2)[[0, 1] * 4], epochs=2, batch_size=4, verbose=0,
                        class_weight={0: 1.0, 1: 3.0})
assert all(np.isfinite(history.history["loss"]))

sys.exit(main(["train", sys.argv[1], *sum([["--set", value] for value in json.loads(sys.argv[2])], []),
               "--run-dir", sys.argv[3]]))
"""


@pytest.mark.slow  # a JAX process: ~23 s loaded; the same student trains on TensorFlow by default
def test_distillation_runs_on_jax_with_windows_class_weights_mixup_unlabelled_and_metadata(teachers, tmp_path):
    folder, config, _, teacher, _ = teachers
    unlabelled = tmp_path / "unlabelled"
    for index in range(3):
        write_audio(unlabelled / f"u{index}.wav", tone_pcm(index % 2, 200 + index, 2.0), RATE, subtype="PCM_16")
    overrides = [*STUDENT, f"distill.teacher={teacher / 'best.keras'}", "train.epochs=1",
                 f'distill.unlabelled=["{unlabelled}"]', 'distill.teacher_input="clean"']
    result = run_on_jax(JAX_STUDENT, config, json.dumps(overrides), tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    assert training["distillation"]["kind"] == "file" and training["distillation"]["unlabelled_clips"] == 3
    assert keras.saving.load_model(tmp_path / "run" / "best.keras", safe_mode=True).name == "cough_small_cnn"


def test_the_esc10_distillation_experiments_load_with_their_teacher_as_a_parameter():
    for name, model in (("esc10_distill_resnet18", "resnet18"), ("esc10_distill_cnn1d", "esc_cnn1d")):
        path = REPO / "experiments" / "esc" / f"{name}.toml"
        config = load_config(path, ["distill.teacher=saved_models/elsewhere-cv"])
        assert config["model"]["name"] == model and config["distill"]["teacher"] == "saved_models/elsewhere-cv"
        assert "--set distill.teacher=" in path.read_text()  # the header says how to give the teacher

