"""``coughclf bench train``: the time of one training step of a registered classifier, on any backend.

The step is ``model.train_on_batch`` (forward, softmax cross-entropy, backward, Adam
update) on a fixed random batch — in features mode by default (for ``cough_crnn`` 32
log-mel inputs of 313 frames × 128 mels, the report's setting), or waveforms through the
model's own front end with ``--input-mode waveform`` — so the figure measures the model,
not the input pipeline. Reported separately, timed in the same interleaved rounds:

* ``step_ms``: the step on inputs already on the device (what a prefetching input
  pipeline gives the model);
* ``host_to_device_ms``: copying the NumPy batch to the device (and, for waveforms,
  the same batch as int16 PCM, half the bytes);
* ``step_with_copy_ms``: the step fed the NumPy batch, i.e. both together.

``--teacher NAME|FILE.keras`` adds the distillation row (:mod:`coughclf.distillation`): the same step
with a frozen teacher scoring the batch beside the student (``distillation.step_ms``), the teacher's
forward pass alone (``teacher_ms``) and the ratio to the plain step; a registered teacher is built with
random weights for the student's input length and classes (its cost does not depend on its weights).

``--compare-torch`` times the report's PyTorch CRNN (:mod:`coughclf.bench._torch`; with
waveforms, behind torchaudio's log-mel) on the same batch and device the same way, when
PyTorch is installed (with Keras on JAX or PyTorch: PyTorch and TensorFlow crash in one
process). No TensorFlow is imported unless Keras runs on it, so this runs on a GPU machine
with only JAX: ``KERAS_BACKEND=jax coughclf bench train --compare-torch``.
Warm-up rounds (tracing, compilation) are excluded; medians of ``--steps`` rounds.
"""

import numpy as np

from coughclf.bench._measure import describe_machine, interleaved_milliseconds, megabytes, to_device

HELP = "training-step time of a model, inputs on the device and host-to-device copy apart (any backend)"
NEEDS_TENSORFLOW = False
JIT_CHOICES = {"auto": "auto", "on": True, "off": False}
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# The registry's models whose reports' PyTorch code coughclf.bench._torch carries.
TORCH_REFERENCES = ("cough_crnn",)


def add_arguments(parser):
    parser.add_argument("--model", default="cough_crnn", help="registered classifier (default: cough_crnn)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default: 32)")
    parser.add_argument("--input-mode", choices=("features", "waveform"), default="features",
                        help="random log-mel features (default) or waveforms through the model's front end")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument("--jit-compile", choices=sorted(JIT_CHOICES), default="auto",
                        help="XLA-compile the train step: 'auto' (default, Keras' choice: off for TensorFlow "
                             "on a CPU, where its own kernels are faster, see docs/models.md; on for JAX and GPUs), "
                             "'on' or 'off'")
    parser.add_argument("--dtype-policy", choices=DTYPE_POLICIES, default="float32",
                        help="Keras dtype policy of the model (default: float32)")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time the report's PyTorch model (cough_crnn only) on the same device")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch and the weights")
    parser.add_argument("--teacher", metavar="NAME|FILE.keras",
                        help="also time the distillation step with this frozen teacher (a registered classifier, "
                             "built at random for the same input and classes, or a .keras file); needs "
                             "--input-mode waveform")


def _check(args):
    from coughclf.errors import CoughclfError
    from coughclf.models import spec

    if spec(args.model).task != "classification":
        raise CoughclfError(f"bench train times classifiers; {args.model!r} is a "
                            f"{spec(args.model).task} model (choose one listed by 'coughclf models')")
    if args.teacher and args.input_mode != "waveform":
        raise CoughclfError("--teacher hears the waveform: add --input-mode waveform")
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        raise CoughclfError("--steps and --batch-size must be at least 1 and --warmup at least 0")
    if args.compare_torch:
        from coughclf.bench._torch import check_torch_beside_backend

        check_torch_beside_backend()
    if args.compare_torch and args.model not in TORCH_REFERENCES:
        raise CoughclfError(f"--compare-torch has the reports' PyTorch code for {', '.join(TORCH_REFERENCES)} "
                            f"only, not {args.model!r}: drop --compare-torch or choose --model cough_crnn")


def run(args):
    import keras

    from coughclf.errors import CoughclfError
    from coughclf.models import build
    from coughclf.models.common import trainable_params
    from coughclf.optim import dtype_policy

    _check(args)
    keras.utils.set_random_seed(args.seed)
    with dtype_policy(args.dtype_policy):
        model = build(args.model, input_mode=args.input_mode)
    if len(model.inputs) != 1:
        raise CoughclfError(f"bench train feeds one input; {args.model!r} has {len(model.inputs)} inputs "
                            "in its default configuration")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  jit_compile=JIT_CHOICES[args.jit_compile])
    rng = np.random.default_rng(args.seed)
    input_shape = tuple(model.input.shape[1:])
    if args.input_mode == "waveform":
        inputs = (0.1 * rng.standard_normal((args.batch_size, *input_shape))).astype("float32")
    else:
        inputs = rng.standard_normal((args.batch_size, *input_shape)).astype("float32")
    labels = rng.integers(0, model.output.shape[-1], args.batch_size).astype("int32")
    device_inputs, device_labels = to_device(inputs), to_device(labels)
    calls = {
        "step_ms": lambda: model.train_on_batch(device_inputs, device_labels),
        "step_with_copy_ms": lambda: model.train_on_batch(inputs, labels),
        "host_to_device_ms": lambda: to_device(inputs),
    }
    if args.input_mode == "waveform":
        pcm = np.round(np.clip(inputs, -1, 1) * 32767).astype("int16")
        calls["host_to_device_int16_ms"] = lambda: to_device(pcm)
    torch_calls, torch_results = {}, None
    if args.compare_torch:
        torch_calls, torch_results = _torch_reference(args, model, inputs, labels)
    distill_calls, distillation = {}, None
    if args.teacher:
        distill_calls, distillation = _distillation_calls(args, model, device_inputs, to_device(
            np.eye(model.output.shape[-1], dtype="float32")[labels]))
    results = {
        "model": args.model, "input_mode": args.input_mode, "batch_size": args.batch_size,
        "input_shape": list(input_shape), "input_megabytes": megabytes(inputs),
        "trainable_params": trainable_params(model), "jit_compile": args.jit_compile,
        "dtype_policy": args.dtype_policy, "steps": args.steps, "warmup_steps": args.warmup,
        **describe_machine(),
    }
    timings = interleaved_milliseconds({**calls, **torch_calls, **distill_calls}, args.steps, args.warmup,
                                       seed=args.seed)
    results.update({name: timings[name] for name in calls})
    results["load_average_after"] = describe_machine()["load_average"]
    if distillation is not None:
        distillation.update({name.removeprefix("distill_"): timings[name] for name in distill_calls})
        distillation["step_over_plain"] = round(timings["distill_step_ms"]["median"] / timings["step_ms"]["median"], 3)
        results["distillation"] = distillation
    if torch_results is not None:
        results["torch"] = torch_results
        if torch_calls:
            torch_results.update({name.removeprefix("torch_"): timings[name] for name in torch_calls})
            results["step_over_torch"] = round(timings["step_ms"]["median"] / timings["torch_step_ms"]["median"],
                                               3)
    return results


def _torch_reference(args, model, inputs, labels):
    """``(calls, results)``: the timed calls of the report's PyTorch model on the same batch, and what
    describes them; no calls and the reason when PyTorch (or, for waveforms, torchaudio) is missing."""
    from coughclf.bench import _torch
    from coughclf.models import spec

    waveform = args.input_mode == "waveform"
    torch, torchaudio, missing = _torch.load(need_torchaudio=waveform)
    if missing:
        return {}, {"skipped": missing}
    torch.manual_seed(args.seed)
    device = _torch.device(torch)
    if waveform:
        defaults = spec(args.model).defaults
        front_end = _torch.log_mel(torchaudio, defaults["sample_rate"], **defaults["frontend"]).to(device)
        torch_inputs = inputs
        with torch.no_grad():
            mels, frames = front_end(torch.as_tensor(inputs[:1]).to(device)).shape[2:]
    else:
        front_end = None
        torch_inputs = np.ascontiguousarray(np.swapaxes(inputs, 1, 2)[:, None])  # [batch, 1, mels, frames]
        mels, frames = torch_inputs.shape[2:]
    reference = _torch.cough_crnn(torch, mels, frames, model.output.shape[-1]).to(device)
    wait = _torch.synchronizer(torch)

    def host_to_device():
        torch.as_tensor(torch_inputs).to(device)
        wait()

    step = _torch.train_step(torch, reference, torch.as_tensor(torch_inputs).to(device),
                             torch.as_tensor(labels).long().to(device), front_end)
    results = {"model": "the report's PyTorch CRNN" + (" behind torchaudio's log-mel" if waveform else ""),
               **_torch.describe(torch, torchaudio),
               "trainable_params": sum(p.numel() for p in reference.parameters() if p.requires_grad)}
    return {"torch_step_ms": step, "torch_host_to_device_ms": host_to_device}, results


def _distillation_calls(args, student, inputs, one_hot):
    """``(calls, results)``: the distillation step of ``student`` beside ``args.teacher`` (frozen) on the same
    batch, and the teacher's forward pass alone; the results describe the teacher."""
    import keras

    from coughclf import models
    from coughclf.distillation.model import Distiller, TeacherLogProbabilities
    from coughclf.model_files import load_model_file
    from coughclf.models.common import trainable_params

    samples, classes = student.input.shape[1], student.output.shape[-1]
    if args.teacher.endswith(".keras"):
        teacher = load_model_file(args.teacher)
    else:
        options = {"input_mode": "waveform", "num_classes": classes}
        if "clip_seconds" in models.accepted_options(args.teacher):
            options["clip_seconds"] = samples / models.spec(args.model).defaults.get("sample_rate", 16000)
        teacher = models.build(args.teacher, **options)
    described = {"teacher": args.teacher, "teacher_params": trainable_params(teacher)}
    teacher.trainable = False
    layer = TeacherLogProbabilities([teacher], list(range(classes)), teacher.input.shape[1])
    distiller = Distiller(student, layer, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.CategoricalCrossentropy(),
                      jit_compile=JIT_CHOICES[args.jit_compile])
    audio = keras.Input((samples,))
    alone = keras.Model(audio, layer(audio))
    alone.compile(jit_compile=JIT_CHOICES[args.jit_compile])
    return {"distill_step_ms": lambda: distiller.train_on_batch(inputs, one_hot),
            "distill_teacher_ms": lambda: alone.predict_on_batch(inputs)}, described
