"""Per-clip latency at batch 1 on one thread: Keras against TFLite float32, float16 and int8.

For each model (untrained weights; latency does not depend on them), side by side in
one process:

* ``keras_predict_on_batch``: ``model.predict_on_batch(x)`` on the trained-form model
  (``stft="fft"``), what a Python service calling Keras pays per clip;
* ``keras_compiled_call``: the same model's ``model(x)`` inside a ``tf.function``
  compiled with XLA (``jit_compile=True``), traced once beforehand;
* ``tflite_float32`` / ``tflite_float16`` / ``tflite_int8``: the exported flatbuffers
  (:func:`coughclf.export.convert_tflite`; int8 calibrated on synthetic tones and noise)
  run by ``ai_edge_litert`` with ``num_threads=1``.

TensorFlow's own thread pools are limited to one thread before anything runs. Each
figure is the median of ``--repeats`` timed calls after ``--warmup`` untimed ones, in
milliseconds per clip; file sizes are in bytes.
"""

import time

import numpy as np

HELP = "TFLite vs Keras latency at batch 1 on one thread (float32, float16, int8) and model file sizes"
MODELS = ("kws_cnn", "cough_crnn", "esc_cnn1d")
QUANTIZATIONS = {"tflite_float32": "none", "tflite_float16": "float16", "tflite_int8": "int8"}


def add_arguments(parser):
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"models (default {' '.join(MODELS)})")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per variant (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    parser.add_argument("--calibration", type=int, default=32, help="synthetic clips calibrating int8 (default 32)")


def synthetic_clips(count, samples, seed=0, sample_rate=16000):
    """Tones of random pitch and level in noise: calibration data that exercises the whole range."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(samples) / sample_rate
    return [(rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 4000) * time_axis)
             + rng.uniform(0.001, 0.05) * rng.standard_normal(samples)).astype(np.float32) for _ in range(count)]


def median_milliseconds(call, repeats, warmup):
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return round(1000 * float(np.median(timings)), 3)


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
    latency = {
        "keras_predict_on_batch": median_milliseconds(lambda: model.predict_on_batch(clip), repeats, warmup),
        "keras_compiled_call": median_milliseconds(lambda: compiled(clip).numpy(), repeats, warmup),
    }
    export = inference_model(model)
    representative = synthetic_clips(calibration, samples)
    sizes = {}
    for key, quantize in QUANTIZATIONS.items():
        content = convert_tflite(export, quantize, representative if quantize == "int8" else None)
        sizes[key] = len(content)
        latency[key] = median_milliseconds(_tflite_call(content, clip), repeats, warmup)
    return {
        "clip_samples": samples,
        "latency_ms": latency,
        "size_bytes": sizes,
        "tflite_float32_speedup_vs_predict_on_batch": round(
            latency["keras_predict_on_batch"] / latency["tflite_float32"], 1),
        "int8_size_fraction_of_float32": round(sizes["tflite_int8"] / sizes["tflite_float32"], 3),
    }


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tqdm import tqdm

    return {name: measure(name, args.repeats, args.warmup, args.calibration)
            for name in tqdm(args.models, desc="models", unit="model")}
