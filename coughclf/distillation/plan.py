"""A classifier's fit turned into a distillation fit: :func:`distillation_plan` takes the
:class:`coughclf.fitting.FitPlan` that :func:`coughclf.classification.plan_fit` made for the student and
returns the one that trains it inside a :class:`coughclf.distillation.model.Distiller` (to compile, as the
student was): the teacher of the run's split, the unlabelled batches, and the teacher's cost.

Everything else of the run is the student's: its datasets, monitor, callbacks; ``best.keras`` is the
student alone (``Distiller.save``). ``training.json`` gains ``"distillation"``: the teacher, the settings,
the unlabelled clips used, and the cost of the teacher (:class:`TeacherCost`).
"""

import statistics
import time

import keras
import numpy as np

from coughclf.errors import CoughclfError

# Timed calls of the teacher on one batch, after one untimed call (tracing, compilation).
COST_REPEATS = 5


def distillation_plan(config, plan, cache, split, strategy):
    """The :class:`coughclf.fitting.FitPlan` that trains ``plan.model`` (the student) against its teacher."""
    from coughclf.distillation.model import Distiller, TeacherLogProbabilities, audio_input
    from coughclf.distillation.teachers import (class_positions, describe_teacher, load_teacher_models,
                                                teacher_members)
    from coughclf.optim import jit_compile

    settings = config["distill"]
    teacher = describe_teacher(config)
    positions = class_positions(teacher.classes, cache.classes, config.source)
    members = teacher_members(config, teacher, split)
    student = plan.model
    samples = audio_input(student).shape[1]
    with strategy.scope():
        models = load_teacher_models(config, teacher, members)
        lengths = {model.inputs[0].shape[1] for model in models}
        if len(lengths) != 1:
            raise CoughclfError(f"{config.source}: the teacher's models take inputs of different lengths "
                                f"({sorted(lengths, key=str)}); a teacher needs one")
        layer = TeacherLogProbabilities(models, positions, next(iter(lengths)), name="teacher")
        distiller = Distiller(student, layer, temperature=settings["temperature"], alpha=settings["alpha"],
                              teacher_input=settings["teacher_input"])
    summary = {"teacher": teacher.where, "kind": teacher.kind, "members": [str(member) for member in members],
               "teacher_classes": teacher.classes, "teacher_samples": next(iter(lengths)), "student_samples": samples,
               **{key: settings[key] for key in ("temperature", "alpha", "teacher_input")}}
    train_data, class_weight = plan.train_data, plan.class_weight
    if settings["unlabelled"]:
        train_data, class_weight, counts = _with_unlabelled(config, plan, cache, split, audio_input(student))
        summary.update(counts, unlabelled_ratio=settings["unlabelled_ratio"])
    cost = TeacherCost(layer, (config["train"]["batch_size"], samples), summary, jit_compile(config))
    return plan._replace(model=distiller, train_data=train_data, class_weight=class_weight,
                         callbacks=(*plan.callbacks, cost), summary={**plan.summary, "distillation": summary})


def _with_unlabelled(config, plan, cache, split, audio):
    """``(training batches, class_weight for fit, counts)`` with the unlabelled batches between the labelled ones.

    Class weights become per-example weights first (an unlabelled batch weighs 1), since Keras would
    weigh an all-zero target by class 0's weight."""
    from coughclf.distillation.unlabelled import held_out_audio, interleave, unlabelled_batches, unlabelled_caches
    from coughclf.mixing import BatchMixing, mix_batches

    labelled = plan.train_data
    if plan.class_weight is not None:
        labelled = mix_batches(labelled, BatchMixing(), sample_rate=cache.sample_rate, class_weights=plan.class_weight)
    unlabelled, counts = unlabelled_batches(
        config, unlabelled_caches(config), held_out_audio(cache, split), seconds=audio.shape[1] / cache.sample_rate,
        num_classes=len(cache.classes), weighted=len(labelled.element_spec) == 3)
    return interleave(labelled, unlabelled, config["distill"]["unlabelled_ratio"]), None, counts


class TeacherCost(keras.callbacks.Callback):
    """The teacher's share of training time, into ``summary`` (training.json's ``"distillation"``).

    Before the first epoch the teacher alone scores one batch of the training shape
    ``COST_REPEATS`` times (``teacher_ms_per_batch``, the median); each epoch counts its batches, so
    ``teacher_seconds_per_epoch`` is what the teacher adds to an epoch, beside ``epoch_seconds`` (the
    mean epoch, validation included).
    """

    def __init__(self, teacher, batch_shape, summary, jit_compile):
        super().__init__()
        self.teacher, self.batch_shape, self.summary, self.jit_compile = teacher, batch_shape, summary, jit_compile
        self.epoch_seconds, self.started, self.batches = [], 0.0, 0

    def on_train_begin(self, logs=None):
        inputs = keras.Input(self.batch_shape[1:])
        timer = keras.Model(inputs, self.teacher(inputs), name="teacher_timer")
        timer.compile(jit_compile=self.jit_compile)  # as the training step is
        batch = np.random.default_rng(0).uniform(-0.1, 0.1, self.batch_shape).astype("float32")
        timer.predict_on_batch(batch)
        took = []
        for _ in range(COST_REPEATS):
            started = time.perf_counter()
            timer.predict_on_batch(batch)  # returns NumPy: the computation has finished
            took.append(time.perf_counter() - started)
        self.summary["teacher_ms_per_batch"] = round(1000 * statistics.median(took), 2)

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.batches = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self.started)
        self.summary.update(batches_per_epoch=self.batches, epoch_seconds=round(statistics.mean(self.epoch_seconds), 2),
                            teacher_seconds_per_epoch=round(self.summary["teacher_ms_per_batch"] * self.batches / 1000,
                                                            2))
