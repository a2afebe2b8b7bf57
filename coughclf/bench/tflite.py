"""Per-clip latency at batch 1 on one thread: Keras against TFLite float32, float16 and int8.

For each model (untrained weights; latency does not depend on them), side by side in
one process:

* ``keras_predict_on_batch``: ``model.predict_on_batch(x)`` on the trained-form model,
  what a Python service calling Keras pays per clip (its per-call Python work included);
* ``keras_compiled_call``: the same model's ``model(x)`` inside a ``tf.function``
  compiled with XLA (``jit_compile=True``), traced once beforehand;
* ``tflite_float32`` / ``tflite_float16`` / ``tflite_int8``: the exported flatbuffers
  (:func:`coughclf.export.convert_tflite`; int8 calibrated on synthetic tones and noise)
  run by ``ai_edge_litert`` with ``num_threads=1``.

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

HELP = "TFLite vs Keras latency at batch 1 on one thread (float32, float16, int8) and model file sizes"
MODELS = ("kws_cnn", "cough_crnn", "esc_cnn1d")
QUANTIZATIONS = {"tflite_float32": "none", "tflite_float16": "float16", "tflite_int8": "int8"}


def add_arguments(parser):
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"models (default {' '.join(MODELS)})")
    parser.add_argument("--repeats", type=int, default=100, help="timed rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--calibration", type=int, default=32, help="synthetic clips calibrating int8 (default 32)")


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


def measure(name, repeats, warmup, calibration):
    """Latencies (ms per clip) and file sizes (bytes) of one model."""
    import tensorflow as tf

    from coughclf.export import convert_tflite, inference_model
    from coughclf.models import build

    model = build(name, input_mode="waveform")
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
    for key, quantize in QUANTIZATIONS.items():
        content = convert_tflite(export, quantize, representative if quantize == "int8" else None)
        sizes[key] = len(content)
        calls[key] = _tflite_call(content, clip)
    timings = interleaved_milliseconds(calls, repeats, warmup)
    latency = {key: timing["median"] for key, timing in timings.items()}
    cpu = {key: timing["cpu_median"] for key, timing in timings.items()}
    return {
        "clip_samples": samples,
        "latency_ms": latency,
        "latency_ms_p10_p90": {key: [timing["p10"], timing["p90"]] for key, timing in timings.items()},
        "cpu_ms": cpu,
        "size_bytes": sizes,
        "tflite_float32_speedup_vs_predict_on_batch": _ratio(latency, "keras_predict_on_batch"),
        "tflite_float32_speedup_vs_predict_on_batch_cpu": _ratio(cpu, "keras_predict_on_batch"),
        "tflite_float32_speedup_vs_compiled_call": _ratio(latency, "keras_compiled_call"),
        "int8_size_fraction_of_float32": round(sizes["tflite_int8"] / sizes["tflite_float32"], 3),
    }


def _ratio(milliseconds, keras_variant):
    return round(milliseconds[keras_variant] / milliseconds["tflite_float32"], 1)


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tqdm import tqdm

    results = {name: measure(name, args.repeats, args.warmup, args.calibration)
               for name in tqdm(args.models, desc="models", unit="model")}
    results["settings"] = {"repeats": args.repeats, "warmup": args.warmup, "threads": 1, "batch": 1}
    return results
