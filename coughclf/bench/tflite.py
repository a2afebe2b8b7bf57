"""Per-clip latency at batch 1 on one thread: Keras against TFLite float32, float16, dynamic and int8.

For each model (the registry's, untrained: latency does not depend on the weights; ``--option
key=value`` passes builder options, e.g. the architecture a checkpoint implies; or a run folder or
``.keras`` file as trained, a distilled student or its teacher, say), side by side in one process:

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

``--streaming`` compares, per model (the registry's, built in the form that streams,
:data:`coughclf.streaming.STREAMING_OPTIONS`, ``--option`` on top; or a run folder or ``.keras``
file as trained), the streaming ``.tflite`` (:mod:`coughclf.streaming.export`: one hop in, its
state carried) with the window ``.tflite`` run on the whole window at every hop, as a model
without a streaming form must be. Each timed call is one second of audio, hop after hop, as a
listening device runs (its caches warm between hops: timed one hop at a time between the other
variants, the small streaming model ran twice as slowly from cold caches); the rounds interleave
the variants. Per hop: ``ms_per_hop`` / ``cpu_ms_per_hop``, a whole Python call (inputs and
states set, the interpreter run, outputs and states read); ``compute_ms_per_hop``, the
interpreter's run alone (CPU time): what a device pays, whose state copies are a ``memcpy`` or a
pointer swap; ``compute_ratio`` (window / streaming compute, per hop and so per second of audio)
and ``call_ratio`` (the same for whole calls); ``real_time_factor``, a call's CPU time over the
hop's duration (the share of one core listening takes); ``multiply_accumulates_per_hop`` in
convolutions and dense layers (:func:`multiply_accumulates`) and their ratio, the same on any
machine. ``max_score_difference`` is the largest difference between the two files' probabilities
over a few seconds of synthetic audio, hop after hop (``score_spread``, their largest standard
deviation over the hops, says whether the scores moved at all: an untrained model's often do
not).
"""

import numpy as np

from coughclf.bench._measure import interleaved_milliseconds

HELP = "TFLite vs Keras latency at batch 1 on one thread (float32, float16, dynamic, int8) and model file sizes"
MODELS = ("kws_cnn", "cough_crnn", "esc_cnn1d")
STREAMING_MODELS = ("kws_cnn", "cough_small_cnn")
# Audio streamed to check that the streaming and window files give the same scores.
PARITY_SECONDS = 3.0
# --quantize name -> convert_tflite's quantize argument
QUANTIZATIONS = {"float32": "none", "float16": "float16", "dynamic": "dynamic", "int8": "int8"}
DEFAULT_QUANTIZATIONS = ("float32", "float16", "int8")


def add_arguments(parser):
    from coughclf.streaming.settings import HOP_HELP

    parser.add_argument("--models", nargs="+", default=None,
                        help=f"registry models, run folders or .keras files (default {' '.join(MODELS)}; "
                             f"--streaming: {' '.join(STREAMING_MODELS)})")
    parser.add_argument("--repeats", type=int, default=100, help="timed rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--calibration", type=int, default=32, help="synthetic clips calibrating int8 (default 32)")
    parser.add_argument("--quantize", nargs="+", choices=list(QUANTIZATIONS), default=list(DEFAULT_QUANTIZATIONS),
                        help=f"TFLite variants (default {' '.join(DEFAULT_QUANTIZATIONS)}; float32 always runs)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a builder option for every model, value read as TOML (repeatable), "
                             "e.g. --option frames=512 --option frontend_layer=KaldiFbank")
    parser.add_argument("--streaming", action="store_true",
                        help="streaming .tflite per hop against the window .tflite recomputed every hop "
                             "(float32, and int8 if --quantize names it)")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS", help=f"with --streaming: {HOP_HELP}")


def synthetic_clips(count, samples, seed=0, sample_rate=16000):
    """Tones of random pitch and level in noise: calibration data that exercises the whole range."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(samples) / sample_rate
    return [(rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 4000) * time_axis)
             + rng.uniform(0.001, 0.05) * rng.standard_normal(samples)).astype(np.float32) for _ in range(count)]


def _tflite_call(content, clip):
    """``call()`` running ``clip`` through the flatbuffer ``content``; ``call.invoke``: the interpreter's run
    alone, its input already set."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def call():
        interpreter.set_tensor(input_index, clip)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    call.invoke = interpreter.invoke
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

    model = trained_or_built(name, options or builder_options(()))
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


# Operators whose multiply-accumulates are counted, and where their weights' reduced dimensions start.
COUNTED_OPERATORS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}


def multiply_accumulates(content):
    """Multiply-accumulates of one run of a flatbuffer's convolutions and dense layers (each output element
    times the weights it reads): compute counted the same way on any machine. FFTs and the mel projection
    are left out."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(bytearray(content), 0)
    codes = [names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
             for code in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]
    graph, total = model.Subgraphs(0), 0
    for operator in (graph.Operators(i) for i in range(graph.OperatorsLength())):
        name = codes[operator.OpcodeIndex()]
        if name not in COUNTED_OPERATORS:
            continue
        weights = graph.Tensors(operator.Inputs(1)).ShapeAsNumpy()
        output = graph.Tensors(operator.Outputs(0)).ShapeAsNumpy()
        reduced = weights[1:-1] if name == "DEPTHWISE_CONV_2D" else weights[COUNTED_OPERATORS[name]:]
        total += int(np.prod(output)) * int(np.prod(reduced))
    return total


def trained_or_built(name, options):
    """A run folder or ``.keras`` file ``name`` as trained (``options`` unused), else the registry's ``name``
    built with ``options``."""
    from pathlib import Path

    from coughclf.export import load_trained
    from coughclf.models import build

    return load_trained(name)[0] if Path(name).exists() else build(name, **options)


def streaming_model(name, options=None):
    """The model to bench in streaming form: a run folder or ``.keras`` file as trained, or the registry's
    ``name`` built in the form that streams (``options`` on top; untrained: timings do not depend on it)."""
    from pathlib import Path

    from coughclf.streaming import streaming_options

    if Path(name).exists():
        return trained_or_built(name, {})
    base, options = streaming_options(name), dict(options or {})
    frontend = {**base["frontend"], **options.pop("frontend", {})}  # --option frontend={...} adds to it
    return trained_or_built(name, {**base, **options, "frontend": frontend})


def measure_streaming(name, repeats, warmup, calibration, quantizations=("float32",), options=None,
                      hop_seconds=None):
    """Per-hop cost of the streaming ``.tflite`` against the window ``.tflite`` at every hop, the real-time
    factors, the compute ratio and the largest score difference, for one model (see the module)."""
    import tempfile
    from pathlib import Path

    from coughclf.export import convert_tflite, inference_model
    from coughclf.streaming.export import export_streaming_tflite
    from coughclf.streaming.runner import hop_outputs, load_stream

    model = streaming_model(name, options)
    window = model.inputs[0].shape[1]
    window_content = convert_tflite(inference_model(model))
    window_call = _tflite_call(window_content, synthetic_clips(1, window, seed=1)[0][None])
    streams, sizes = {}, {"window_tflite_float32": len(window_content)}
    with tempfile.TemporaryDirectory(prefix="coughclf-bench-") as folder:
        for variant in dict.fromkeys(("float32", *(q for q in quantizations if q in ("float32", "int8")))):
            representative = synthetic_clips(calibration, window) if variant == "int8" else None
            path = export_streaming_tflite(model, Path(folder) / f"{variant}.tflite", QUANTIZATIONS[variant],
                                           representative, hop_seconds=hop_seconds)
            streams[f"streaming_tflite_{variant}"] = load_stream(path)
            sizes[f"streaming_tflite_{variant}"] = path.stat().st_size
            if variant == "float32":
                macs = {"window": multiply_accumulates(window_content),
                        "streaming": multiply_accumulates(path.read_bytes())}
    first = streams["streaming_tflite_float32"]
    hop, rate = first.hop_samples, first.metadata["sample_rate"]
    parity = np.concatenate(synthetic_clips(int(PARITY_SECONDS * rate) // hop, hop, seed=2))
    streamed = np.stack([p for _, p in hop_outputs(first, [parity])])
    padded = np.concatenate([np.zeros(window, np.float32), parity])
    windowed = np.stack([_tflite_call(window_content, padded[None, end - window:end])()[0]
                         for end in range(window + hop, len(padded) + 1, hop)])
    # Each timed call processes one second of audio, hop after hop, as a listening device does (caches stay
    # warm between its hops); the rounds interleave the variants (see interleaved_milliseconds).
    hops = synthetic_clips(max(1, round(rate / hop)), hop, seed=3)
    calls = {"window_tflite_float32": lambda: [window_call() for _ in hops],
             "window_tflite_float32 invoke": lambda: [window_call.invoke() for _ in hops]}
    for key, stream in streams.items():
        calls[key] = lambda stream=stream: [stream(hop_audio) for hop_audio in hops]
        calls[f"{key} invoke"] = lambda stream=stream: [stream.interpreter.invoke() for _ in hops]
    timings = interleaved_milliseconds(calls, repeats, warmup)
    hop_ms = 1000 * hop / rate
    variants = [key for key in calls if not key.endswith(" invoke")]

    def per_hop(key, statistic):
        return round(timings[key][statistic] / len(hops), 4)

    cpu = {key: per_hop(key, "cpu_median") for key in variants}
    compute = {key: per_hop(f"{key} invoke", "cpu_median") for key in variants}
    return {
        "hop_samples": hop, "hop_ms": hop_ms, "window_samples": window,
        "ms_per_hop": {key: per_hop(key, "median") for key in variants},
        "ms_per_hop_p10_p90": {key: [per_hop(key, "p10"), per_hop(key, "p90")] for key in variants},
        "cpu_ms_per_hop": cpu,
        "compute_ms_per_hop": compute,
        "compute_ms_per_second_of_audio": {key: round(value * 1000 / hop_ms, 2) for key, value in compute.items()},
        "real_time_factor": {key: round(value / hop_ms, 4) for key, value in cpu.items()},
        "compute_ratio": {key: round(compute["window_tflite_float32"] / max(value, 1e-3), 1)
                          for key, value in compute.items() if key.startswith("streaming")},
        "call_ratio": {key: round(cpu["window_tflite_float32"] / max(value, 1e-3), 1)
                       for key, value in cpu.items() if key.startswith("streaming")},
        "multiply_accumulates_per_hop": macs,
        "multiply_accumulate_ratio": round(macs["window"] / max(macs["streaming"], 1), 1),
        "max_score_difference": float(np.abs(streamed - windowed).max()),
        "score_spread": float(windowed.std(axis=0).max()),
        "size_bytes": sizes,
    }


def run(args):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tqdm import tqdm

    options = builder_options(args.option)
    if args.streaming:
        names = args.models or list(STREAMING_MODELS)
        results = {name: measure_streaming(name, args.repeats, args.warmup, args.calibration, args.quantize,
                                           options, args.hop)
                   for name in tqdm(names, desc="models", unit="model")}
    else:
        if args.hop is not None:
            from coughclf.errors import CoughclfError

            raise CoughclfError("--hop is the streaming model's audio per call; add --streaming or drop it")
        results = {name: measure(name, args.repeats, args.warmup, args.calibration, args.quantize, options)
                   for name in tqdm(args.models or list(MODELS), desc="models", unit="model")}
    results["settings"] = {"repeats": args.repeats, "warmup": args.warmup, "threads": 1, "batch": 1,
                           "options": options, "streaming": args.streaming}
    return results
