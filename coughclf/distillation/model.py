"""The distillation training model: the student and its frozen teacher on the same batch, and the loss.

:class:`Distiller` is what ``fit`` trains (``keras.ops`` only, so TensorFlow and JAX alike). In
training it runs one graph built on the student's own layers::

    batch ──► student's waveform augmentation ──► rest of the student ──► student logits
                         │
                         └─(teacher_input = "augmented")──► frozen teacher ──► teacher log-probabilities

so the augmentation draws once and the teacher scores exactly the waveform the student's front end
reads (``"clean"``: the batch before the student's augmentation instead). Cropping, windowing and
batch mixing happen in the tf.data pipeline, before either model, so both see the same cropped,
windowed, mixed example. Spectrogram augmentation (SpecAugment) exists in the student's features only:
the teacher has its own front end and hears the whole waveform. The teacher runs in inference mode
(its BatchNorm statistics, dropout) with no gradient through it. In evaluation the Distiller is the
student alone: the validation loss and metrics are a plain run's, and the teacher costs nothing there.

Soft targets need logits: the registry's classifiers end in a softmax Dense layer, whose input and
weights give the logits exactly (:func:`logits_model`), never ``log(clip(p))``. A fold ensemble's
log-probability is ``logsumexp_i log_softmax(z_i) − log k``, the log of its mean probability.

``Distiller.save`` writes the student alone: a run's ``best.keras`` is the student, as for any run.
"""

import math

import keras
from keras import ops

from coughclf.errors import CoughclfError
from coughclf.layers.augment_base import RandomAugmentation


def distillation_loss(targets, student_logits, teacher_logits, temperature, alpha, sample_weight=None):
    """Hinton et al. (2015): per example
    ``alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha)·CE(y, softmax(s))``,
    averaged over the batch (each example times its ``sample_weight``).

    ``targets`` are (mixed, smoothed) one-hot rows; an all-zero row (an unlabelled clip) adds no
    cross-entropy, so it takes the soft loss only. ``T²`` keeps the soft loss's gradients at the
    scale of the hard one's whatever the temperature.
    """
    teacher_log_p = ops.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_p = ops.log_softmax(student_logits / temperature, axis=-1)
    soft = ops.sum(ops.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    hard = -ops.sum(targets * ops.log_softmax(student_logits, axis=-1), axis=-1)
    per_example = alpha * temperature * temperature * soft + (1.0 - alpha) * hard
    if sample_weight is not None:
        per_example = per_example * ops.reshape(ops.cast(sample_weight, per_example.dtype), (-1,))
    return ops.mean(per_example)


class HeadLogits(keras.layers.Layer):
    """A softmax Dense layer's logits ``x @ kernel + bias``, from its own (shared) weights, in float32."""

    def __init__(self, head, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.head = head

    def call(self, features):
        logits = ops.matmul(ops.cast(features, "float32"), ops.cast(self.head.kernel, "float32"))
        return logits + ops.cast(self.head.bias, "float32") if self.head.use_bias else logits


def _output_layer(model):
    output = model.outputs[0]
    for layer in reversed(model.layers):
        try:
            if layer.output is output:
                return layer
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            continue
    return None


def logits_tensor(model):
    """The symbolic logits of ``model``'s softmax output, in its own graph (the Dense's input times its
    weights, or the input of a softmax activation layer); an error for any other output."""
    if len(model.outputs) != 1:
        raise CoughclfError(f"{model.name} has {len(model.outputs)} outputs; distillation needs one of class "
                            "probabilities")
    layer = _output_layer(model)
    if isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.softmax:
        return HeadLogits(layer, name=f"{layer.name}_logits")(layer.input)
    if isinstance(layer, keras.layers.Softmax) or (isinstance(layer, keras.layers.Activation)
                                                    and layer.activation is keras.activations.softmax):
        return layer.input
    raise CoughclfError(f"{model.name} does not end in a softmax layer (its output comes from "
                        f"{getattr(layer, 'name', 'a nested model')}); distillation needs the logits of class "
                        "probabilities, as every registered classifier gives")


def logits_model(model):
    """``model`` (one input) with its logits as the output: the same layers and weights."""
    return keras.Model(model.input, logits_tensor(model), name=f"{model.name}_logits")


class TeacherLogProbabilities(keras.layers.Layer):
    """The frozen teacher's log-probabilities over the data's classes: the mean probability of its
    ``members`` (one model, or a fold ensemble), at ``positions`` (the teacher's output index of each of
    the data's classes), from a waveform centred in the teacher's input length ``samples`` (None: as
    it comes). Inference mode, no gradient."""

    def __init__(self, members, positions, samples=None, **kwargs):
        super().__init__(dtype="float32", trainable=False, **kwargs)
        self.members = [logits_model(member) for member in members]
        self.positions = list(positions)
        self.samples = samples

    def call(self, audio):
        audio = ops.stop_gradient(audio)
        if self.samples is not None:  # the batch's length may be known only when it runs (tf.data)
            missing = self.samples - ops.shape(audio)[1]
            audio = ops.reshape(ops.pad(audio, [(0, 0), (missing // 2, missing - missing // 2)]), (-1, self.samples))
        log_probabilities = [ops.log_softmax(member(audio, training=False), axis=-1) for member in self.members]
        if len(log_probabilities) == 1:
            mean = log_probabilities[0]
        else:
            mean = ops.logsumexp(ops.stack(log_probabilities), axis=0) - math.log(len(log_probabilities))
        return ops.stop_gradient(ops.take(mean, self.positions, axis=-1))


def student_waveform(student):
    """The tensor of ``student``'s graph its front end reads: the output of its last waveform
    augmentation layer, or its audio input when it has none."""
    fed = audio_input(student)
    for layer in student.layers:
        if isinstance(layer, RandomAugmentation) and len(layer.output.shape) == 2:
            fed = layer.output
    return fed


def audio_input(model):
    """``model``'s waveform input (the one that is not ``metadata``)."""
    return next(tensor for tensor in model.inputs if tensor.name.split(":")[0] != "metadata")


class Distiller(keras.Model):
    """Trains ``student`` on :func:`distillation_loss` against ``teacher`` (a
    :class:`TeacherLogProbabilities`); see the module docstring."""

    def __init__(self, student, teacher, *, temperature, alpha, teacher_input="augmented"):
        # autocast off: the batch reaches the student as it comes (float32 audio) under a mixed policy,
        # as a functional model's input would.
        super().__init__(name="distiller", autocast=False)
        if teacher_input not in ("augmented", "clean"):
            raise CoughclfError(f"teacher_input = {teacher_input!r}; choose 'augmented' or 'clean'")
        heard = student_waveform(student) if teacher_input == "augmented" else audio_input(student)
        samples = teacher.samples
        if samples is not None and heard.shape[1] is not None and heard.shape[1] > samples:
            raise CoughclfError(f"the teacher takes {samples} samples but the student's examples have "
                                f"{heard.shape[1]}; give the student shorter windows (data.window_seconds) or a "
                                "teacher of longer inputs")
        self.student = student
        self.teacher = teacher
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.training_graph = keras.Model(student.input, {"student": logits_tensor(student),
                                                           "teacher": teacher(heard)}, name="distillation_graph")
        self.built = True

    def call(self, inputs, training=False):
        if training:
            return self.training_graph(inputs, training=True)
        return {"probabilities": self.student(inputs, training=False)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if "teacher" not in y_pred:  # evaluation: the student's own loss, as in any run
            return super().compute_loss(x, y, y_pred["probabilities"], sample_weight, training)
        loss = distillation_loss(y, y_pred["student"], y_pred["teacher"], self.temperature, self.alpha,
                                 sample_weight)
        for extra in self.losses:  # regularisers, as Keras adds them
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The compiled metrics on the student's probabilities, over labelled examples only (an
        unlabelled clip's all-zero target has no class to be right about)."""
        probabilities = y_pred["probabilities"] if "probabilities" in y_pred else ops.softmax(y_pred["student"])
        labelled = ops.cast(ops.sum(y, axis=-1) > 0, "float32")
        if sample_weight is not None:
            labelled = labelled * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return super().compute_metrics(x, y, probabilities, labelled)

    def save(self, filepath, overwrite=True, **kwargs):
        """Write the student alone (a run's best.keras): the teacher is training's, not the model's."""
        return self.student.save(filepath, overwrite=overwrite, **kwargs)
