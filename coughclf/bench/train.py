"""``coughclf bench train``: median time of one training step of a registered classifier.

The step is ``model.train_on_batch`` (forward, softmax cross-entropy, backward, Adam
update) on a fixed random batch in features mode — for ``cough_crnn`` 32 log-mel
inputs of 313 frames × 128 mels, the report's setting — so the number measures the
model, not the input pipeline. Warm-up steps (tracing, compilation) are excluded.
"""

import os
import platform

HELP = "median training-step time of a model on a batch of random features (warm-up excluded)"

JIT_CHOICES = {"auto": "auto", "on": True, "off": False}


def add_arguments(parser):
    parser.add_argument("--model", default="cough_crnn", help="registered classifier (default: cough_crnn)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default: 32)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument("--jit-compile", choices=sorted(JIT_CHOICES), default="off",
                        help="XLA-compile the train step: 'off' (default; faster on CPU, see README), "
                             "'on', or 'auto' (Keras' choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch")


def _describe_cpu():
    return {"machine": platform.machine(), "processor": platform.processor() or None,
            "cores": os.cpu_count()}


def run(args):
    import statistics
    import time

    import keras
    import numpy as np

    from coughclf.errors import CoughclfError
    from coughclf.models import build, spec
    from coughclf.models.common import trainable_params

    if spec(args.model).task != "classification":
        raise CoughclfError(f"bench train times classifiers; {args.model!r} is a "
                            f"{spec(args.model).task} model (choose one listed by 'coughclf models')")
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        raise CoughclfError("--steps and --batch-size must be at least 1 and --warmup at least 0")

    keras.utils.set_random_seed(args.seed)
    model = build(args.model, input_mode="features")
    if len(model.inputs) != 1:
        raise CoughclfError(f"bench train feeds one features input; {args.model!r} has "
                            f"{len(model.inputs)} inputs in its default configuration")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  jit_compile=JIT_CHOICES[args.jit_compile])
    rng = np.random.default_rng(args.seed)
    feature_shape = tuple(model.input.shape[1:])
    features = keras.ops.convert_to_tensor(
        rng.standard_normal((args.batch_size, *feature_shape)).astype("float32"))
    labels = keras.ops.convert_to_tensor(
        rng.integers(0, model.output.shape[-1], args.batch_size).astype("int32"))

    for _ in range(args.warmup):
        model.train_on_batch(features, labels)
    wall_seconds, cpu_seconds = [], []
    load_before = os.getloadavg()[0]
    for _ in range(args.steps):
        wall, cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(features, labels)
        wall_seconds.append(time.perf_counter() - wall)
        cpu_seconds.append(time.process_time() - cpu)

    def milliseconds(value):
        return round(1000 * value, 1)

    return {
        "model": args.model,
        "batch_size": args.batch_size,
        "input_shape": list(feature_shape),
        "trainable_params": trainable_params(model),
        "backend": keras.backend.backend(),
        "jit_compile": args.jit_compile,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "median_step_ms": milliseconds(statistics.median(wall_seconds)),
        "min_step_ms": milliseconds(min(wall_seconds)),
        "max_step_ms": milliseconds(max(wall_seconds)),
        "median_cpu_ms": milliseconds(statistics.median(cpu_seconds)),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cpu": _describe_cpu(),
    }
