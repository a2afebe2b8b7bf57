"""Per-clip latency at batch 1 on one thread: Keras against TFLite float32, float16, dynamic and int8.

For each model (untrained weights; latency does not depend on them; ``--option key=value``
passes builder options, e.g. the architecture a checkpoint implies), side by side in one
process:

* ``keras_predict_on_batch``: ``model.predict_on_batch(x)`` on the trained-form model,
  what a Python service calling Keras pays per clip (its per-call Python work included);
* ``keras_compiled_call``: the same model's ``model(x)`` inside a ``tf.function``
  compiled with XLA (``jit_compile=True``), traced once beforehand;
* ``tflite_float32`` / ``tflite_float16`` / ``tflite_dynamic`` / ``tflite_int8``: the
  exported flatbuffers (:func:`coughclf.export.convert_tflite`; ``--quantize`` picks them,
  default float32, float16 and int8; int8 calibrated on synthetic tones and noise) run by
  ``ai_edge_litert`` with ``num_threads=1``.

Every variant takes the same numpy clip and returns a numpy array. TensorFlow's own
thread pools are limited to one thread before anything runs. The variants are timed
interleaved — each round calls every variant once, in a fresh random order — so a
change in machine load hits all of them alike; each figure is the median over
``--repeats`` rounds after ``--warmup`` untimed ones, in milliseconds per clip, with
the 10th–90th percentile spread. ``cpu_ms`` is the median process CPU time of a call
(all threads): on a loaded machine a long call is preempted more often than a short
one, which inflates wall-clock ratios, while CPU time is what the call costs. File
sizes are in bytes.
"""

import numpy as np

from coughclf.bench._measure import interleaved_milliseconds

HELP = "TFLite vs Keras latency at batch 1 on one thread (float32, float16, dynamic, int8) and model file sizes"
MODELS = ("kws_cnn", "cough_crnn", "esc_cnn1d")
# --quantize name -> convert_tflite's quantize argument
QUANTIZATIONS = {"float32": "none", "float16": "float16", "dynamic": "dynamic", "int8": "int8"}
DEFAULT_QUANTIZATIONS = ("float32", "float16", "int8")


def add_arguments(parser):
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"models (default {' '.join(MODELS)})")
    parser.add_argument("--repeats", type=int, default=100, help="timed rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--calibration", type=int, default=32, help="synthetic clips calibrating int8 (default 32)")
    parser.add_argument("--quantize", nargs="+", choices=list(QUANTIZATIONS), default=list(DEFAULT_QUANTIZATIONS),
                        help=f"TFLite variants (default {' '.join(DEFAULT_QUANTIZATIONS)}; float32 always runs)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a builder option for every model, value read as TOML (repeatable), "
                             "e.g. --option frames=512 --option frontend_layer=KaldiFbank")


def synthetic_clips(count, samples, seed=0, sample_rate=16000):
    """Tones of random pitch and level in noise: calibration data that exercises the whole range."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(samples) / sample_rate
    return [(rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 4000) * time_axis)
             + rng.uniform(0.001, 0.05) * rng.standard_normal(samples)).astype(np.float32) for _ in range(count)]


def _tflite_call(content, clip):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def call():
        interpreter.set_tensor(input_index, clip)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return call


def builder_options(assignments):
    """``--option key=value`` strings as builder keyword arguments (values read as TOML)."""
    from coughclf.errors import CoughclfError
    from coughclf.overrides import parse_value

    options = {"input_mode": "waveform"}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise CoughclfError(f"--option {assignment!r}: write it as key=value, e.g. --option frames=512")
        options[key.strip()] = parse_value(text.strip(), f"--option {assignment!r}")
    return options


def measure(name, repeats, warmup, calibration, quantizations=DEFAULT_QUANTIZATIONS, options=None):
    """Latencies (ms per clip) and file sizes (bytes) of one model."""
    import tensorflow as tf

    from coughclf.export import convert_tflite, inference_model
    from coughclf.models import build

    model = build(name, **(options or builder_options(())))
    samples = model.inputs[0].shape[1]
    clip = synthetic_clips(1, samples, seed=1)[0][None]
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
    calls = {
        "keras_predict_on_batch": lambda: model.predict_on_batch(clip),
        "keras_compiled_call": lambda: compiled(clip).numpy(),
    }
    export = inference_model(model)
    representative = synthetic_clips(calibration, samples)
    sizes = {}
    for variant in dict.fromkeys(("float32", *quantizations)):
        quantize = QUANTIZATIONS[variant]
        content = convert_tflite(export, quantize, representative if quantize == "int8" else None)
        sizes[f"tflite_{variant}"] = len(content)
        calls[f"tflite_{variant}"] = _tflite_call(content, clip)
    timings = interleaved_milliseconds(calls, repeats, warmup)
    latency = {key: timing["median"] for key, timing in timings.items()}
    cpu = {key: timing["cpu_median"] for key, timing in timings.items()}
    result = {
        "clip_samples": samples,
        "latency_ms": latency,
        "latency_ms_p10_p90": {key: [timing["p10"], timing["p90"]] for key, timing in timings.items()},
        "cpu_ms": cpu,
        "size_bytes": sizes,
        "tflite_float32_speedup_vs_predict_on_batch": _ratio(latency, "keras_predict_on_batch"),
        "tflite_float32_speedup_vs_predict_on_batch_cpu": _ratio(cpu, "keras_predict_on_batch"),
        "tflite_float32_speedup_vs_compiled_call": _ratio(latency, "keras_compiled_call"),
    }
    result.update({f"{variant}_size_fraction_of_float32": round(sizes[f"tflite_{variant}"] / sizes["tflite_float32"], 3)
                   for variant in quantizations if variant != "float32"})
    return result


def _ratio(milliseconds, keras_variant):
    return round(milliseconds[keras_variant] / milliseconds["tflite_float32"], 1)


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tqdm import tqdm

    options = builder_options(args.option)
    results = {name: measure(name, args.repeats, args.warmup, args.calibration, args.quantize, options)
               for name in tqdm(args.models, desc="models", unit="model")}
    results["settings"] = {"repeats": args.repeats, "warmup": args.warmup, "threads": 1, "batch": 1,
                           "options": options}
    return results
