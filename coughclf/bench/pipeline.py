"""Input pipeline + on-model log-mel front end against the reports' per-clip librosa loop.

For each duration the same clips (a prepared cache of 16 kHz clips) go through:

* ``librosa``: the reports' way, a Python loop of ``librosa.feature.melspectrogram``
  (n_fft 1024, hop 512, 128 mels) and ``librosa.power_to_db`` per clip, on audio
  already decoded into numpy arrays in memory (BLAS limited to one thread, its fastest);
* ``pipeline``: :func:`coughclf.pipeline.make_dataset` (its defaults: the clips
  held in memory, float32 audio; random crops, training order) feeding a
  jit-compiled Keras model of ``LogMelSpectrogram`` + ``SpecAugment`` run with
  ``training=True`` (so SpecAugment works), batch 64;
* ``pipeline_int16``: the same with ``audio_dtype="int16"`` and ``PCMToFloat`` at
  the front of the model;
* ``pipeline_streamed``: the same with ``cache_in_memory=False`` (every epoch reads
  and parses the shards);
* ``tf_signal``: a bare batched ``tf.signal`` log-mel on in-memory batches, the
  ceiling for the FFT work on this machine;
* ``pipeline_only`` and ``front_end_in_memory``: the two halves of ``pipeline``
  alone (reading without the model; the model on in-memory batches).

The pipelines are datasets made once and iterated once per pass, as ``model.fit``
iterates one per epoch: these are steady-state epochs. The first epoch of a fresh
dataset (``*_cold_*``: making it, which reads the clips into memory, plus one
epoch) is reported apart. Every method runs once untimed, then the methods take
turns for ``--repeats`` timed passes; medians are reported, as clips/s (wall
clock) and as CPU milliseconds per clip (this process's CPU time): on a machine
shared with other jobs wall-clock rates fall with the load, CPU time per clip much
less. ``cpu_librosa_over_pipeline`` compares CPU time per clip, which is the
wall-clock ratio a quiet machine would show if the pipeline's work spread evenly
over ``cpu_cores`` cores while librosa uses one, divided by ``cpu_cores``.

Then the starvation check: one ``model.fit`` epoch of a small CNN on the log-mel
fed by the pipeline, against the same batches held in memory (ratio near 1: the
pipeline keeps up with training).
"""

import os
import tempfile
import time
from pathlib import Path

HELP = "input pipeline + Keras log-mel/SpecAugment vs a per-clip librosa loop, and the fit starvation check"
SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 1024, 512, 128


def add_arguments(parser):
    parser.add_argument("--clips", type=int, default=512, help="clips per duration (default 512)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 5.0],
                        help="clip durations to measure (default 1 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="pipeline batch size (default 64)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes over the clips per method, taken in turns; the median counts (default 3)")
    parser.add_argument("--audio-dir", type=Path,
                        help="use the first CLIPS audio files under this folder instead of synthetic coughs")
    parser.add_argument("--no-fit", action="store_true", help="skip the model.fit starvation check")


def run(args):
    import keras

    if keras.backend.backend() != "tensorflow":
        from coughclf.errors import CoughclfError

        raise CoughclfError("the pipeline benchmark feeds tf.data into the model: run it with "
                            "KERAS_BACKEND=tensorflow")
    results = {"clips": args.clips, "batch_size": args.batch_size, "cpu_cores": os.cpu_count(),
               "load_average_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="coughclf-bench-") as scratch:
        for seconds in args.seconds:
            cache = _cache_of_clips(Path(scratch) / f"{seconds:g}s", args.clips, seconds, args.audio_dir)
            results[f"{seconds:g}s"] = _measure(cache, seconds, args)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    return results


def _cache_of_clips(root, count, seconds, audio_dir):
    """A prepared cache of ``count`` clips: synthetic coughs of ``seconds``, or real files from ``audio_dir``."""
    from coughclf.datasets.base import Clip
    from coughclf.prepare import prepare_clips

    if audio_dir is None:
        import soundfile

        from coughclf.synthetic import CLASSES, cough_clip

        paths = []
        for index in range(count):
            label = CLASSES[index % len(CLASSES)]
            path = root / "audio" / f"{label}_{index:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), cough_clip(label, subject=index % 6, seconds=seconds, seed=index),
                            SAMPLE_RATE, subtype="PCM_16")
            paths.append(path)
        clips = [Clip(id=p.stem, path=p, label=p.stem.split("_")[0]) for p in paths]
    else:
        from coughclf.datasets.layout import AUDIO_SUFFIXES

        paths = sorted(p for p in Path(audio_dir).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)[:count]
        clips = [Clip(id=f"clip{i:05d}", path=p, label="clip") for i, p in enumerate(paths)]
    prepare_clips(clips, root / "cache", sample_rate=SAMPLE_RATE, progress=False)
    from coughclf.cache import open_cache

    return open_cache(root / "cache")


def _measure(cache, seconds, args):
    import numpy as np

    from coughclf.pipeline import make_dataset

    def pipeline(**options):
        return make_dataset(cache, mode="train", clip_seconds=seconds, batch_size=args.batch_size, seed=0,
                            **options)

    # The clips exactly as the model sees them, decoded once into memory for librosa and tf.signal.
    audio = np.concatenate([batch.numpy() for batch, _ in make_dataset(
        cache, mode="eval", clip_seconds=seconds, batch_size=args.batch_size)])
    clips = len(audio)
    front_end, front_end_int16 = _front_end(audio.shape[1]), _front_end(audio.shape[1], int16=True)
    # One dataset each, iterated once per pass as model.fit does once per epoch.
    in_memory, int16, streamed = pipeline(), pipeline(audio_dtype="int16"), pipeline(cache_in_memory=False)
    timings = _timed_in_turns({
        "librosa": lambda: librosa_loop(audio),
        "pipeline": _consumer(in_memory, front_end),
        "pipeline_int16": _consumer(int16, front_end_int16),
        "pipeline_streamed": _consumer(streamed, front_end),
        "tf_signal": _in_memory_consumer(audio, args.batch_size, _bare_log_mel()),
        # The two halves of "pipeline" alone: reading without the model, the model without reading.
        "pipeline_only": _consumer(in_memory, None),
        "front_end_in_memory": _in_memory_consumer(audio, args.batch_size, front_end),
        # A fresh dataset's first epoch: making it (reading the clips into memory) and iterating it once.
        "pipeline_cold": lambda: _consumer(pipeline(), front_end)(),
        "pipeline_streamed_cold": lambda: _consumer(pipeline(cache_in_memory=False), front_end)(),
    }, args.repeats)
    result = {"clips": clips}
    for name, (wall, cpu) in timings.items():
        result[f"{name}_clips_per_s"] = round(clips / wall, 1)
        result[f"{name}_cpu_ms_per_clip"] = round(1000 * cpu / clips, 3)
    for name in ("pipeline", "pipeline_int16", "pipeline_streamed"):
        result[f"{name}_over_librosa"] = round(timings["librosa"][0] / timings[name][0], 2)
        result[f"cpu_librosa_over_{name}"] = round(timings["librosa"][1] / timings[name][1], 2)
    result["pipeline_over_tf_signal"] = round(timings["tf_signal"][0] / timings["pipeline"][0], 2)
    if not args.no_fit:
        result["fit"] = _starvation_check(in_memory, audio.shape[1])
    return result


def _timed_in_turns(methods, repeats):
    """``{name: (median wall seconds, median CPU seconds of this process)}`` of ``repeats`` timed runs
    of each method, after one untimed warm-up run each; the methods take turns so that a change in
    the machine's load hits them all alike. CPU time is the fairer measure on a shared machine."""
    import numpy as np

    for work in methods.values():
        work()
    runs = {name: [] for name in methods}
    for _ in range(repeats):
        for name, work in methods.items():
            wall, cpu = time.perf_counter(), time.process_time()
            work()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: tuple(np.median(np.array(times), axis=0)) for name, times in runs.items()}


def librosa_loop(audio):
    """The reports' way: ``power_to_db(melspectrogram)`` clip by clip, on one core."""
    import librosa
    import numpy as np
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the per-clip matmuls are too small to gain from more, and idle BLAS
    # threads spinning on a busy machine made this loop up to 8x slower than it is.
    with threadpool_limits(limits=1):
        for clip in audio:
            mel = librosa.feature.melspectrogram(y=clip, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                                 n_mels=N_MELS)
            librosa.power_to_db(mel, ref=np.max)


def _front_end(samples, int16=False):
    """The compiled on-model front end: LogMelSpectrogram then SpecAugment, run in training mode
    (with ``int16``: PCMToFloat first, for 16-bit batches)."""
    import keras
    import tensorflow as tf

    from coughclf.layers import LogMelSpectrogram, PCMToFloat, SpecAugment

    inputs = keras.Input((samples,), dtype="int16" if int16 else "float32")
    waveform = PCMToFloat()(inputs) if int16 else inputs
    features = SpecAugment(seed=0)(LogMelSpectrogram(n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)(waveform))
    model = keras.Model(inputs, features)
    return tf.function(lambda batch: model(batch, training=True), jit_compile=True)


def _bare_log_mel():
    """``power_to_db(melspectrogram)`` in plain batched tf.signal: the reference ceiling."""
    import librosa
    import tensorflow as tf

    filterbank = tf.constant(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).T)

    @tf.function(jit_compile=True)
    def log_mel(batch):
        padded = tf.pad(batch, [[0, 0], [N_FFT // 2, N_FFT // 2]])
        spectrum = tf.signal.stft(padded, N_FFT, HOP, N_FFT, window_fn=tf.signal.hann_window)
        power = tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2
        db = 10.0 * tf.math.log(tf.maximum(power @ filterbank, 1e-10)) / tf.math.log(10.0)
        db -= tf.reduce_max(db, axis=[1, 2], keepdims=True)
        return tf.maximum(db, -80.0)

    return log_mel


def _consumer(pipeline, transform):
    """Iterate one epoch of the pipeline, applying ``transform`` to every batch (None: just read)."""
    def consume():
        for batch, _ in pipeline:
            if transform is not None:
                transform(batch)
        # Outputs are discarded: force the last batch's work to finish inside the timing.
        if transform is not None:
            transform(batch).numpy()
    return consume


def _in_memory_consumer(audio, batch_size, transform):
    import tensorflow as tf

    batches = [tf.constant(audio[start:start + batch_size]) for start in range(0, len(audio), batch_size)]

    def consume():
        for batch in batches:
            output = transform(batch)
        output.numpy()
    return consume


def _small_cnn(samples):
    """A few Conv2D on the log-mel: fast enough per step that a slow pipeline would show."""
    import keras

    from coughclf.layers import LogMelSpectrogram, SpecAugment

    inputs = keras.Input((samples,))
    x = LogMelSpectrogram(n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, normalize="per_example")(inputs)
    x = SpecAugment(seed=0)(x)
    x = keras.layers.Reshape((-1, N_MELS, 1))(x)
    for filters in (8, 16, 16):
        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    return model


def _starvation_check(pipeline, samples, epochs=4):
    """Seconds per ``model.fit`` epoch fed by the pipeline vs by the same batches already in memory.

    The two models (same initial weights) train one epoch at a time in turns, after an untimed
    first epoch each (tracing, compiling, filling the in-memory cache); medians of ``epochs``.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    audio, labels = zip(*((x.numpy(), y.numpy()) for x, y in pipeline))
    batch_size = len(audio[0])
    in_memory = tf.data.Dataset.from_tensor_slices((np.concatenate(audio), np.concatenate(labels)))
    in_memory = in_memory.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE)
    datasets = {"pipeline": pipeline, "in_memory": in_memory}
    models = {}
    for name, dataset in datasets.items():
        keras.utils.set_random_seed(0)
        models[name] = _small_cnn(samples)
        models[name].fit(dataset, epochs=1, verbose=0, shuffle=False)
    runs = {name: [] for name in datasets}
    for _ in range(epochs):
        for name, dataset in datasets.items():
            wall, cpu = time.perf_counter(), time.process_time()
            models[name].fit(dataset, epochs=1, verbose=0, shuffle=False)
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    (wall, cpu), (wall_in_memory, cpu_in_memory) = (np.median(np.array(runs[name]), axis=0) for name in datasets)
    return {"epoch_seconds_pipeline": round(wall, 3), "epoch_seconds_in_memory": round(wall_in_memory, 3),
            "pipeline_over_in_memory": round(wall / wall_in_memory, 3),
            "epoch_cpu_seconds_pipeline": round(cpu, 3), "epoch_cpu_seconds_in_memory": round(cpu_in_memory, 3),
            "cpu_pipeline_over_in_memory": round(cpu / cpu_in_memory, 3)}
