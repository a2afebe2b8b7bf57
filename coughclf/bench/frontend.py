"""``coughclf bench frontend``: the on-model log-mel + SpecAugment front end on the backend's device.

Clips per second of :class:`~coughclf.layers.LogMelSpectrogram` (n_fft 1024, hop 512,
128 mels) followed by :class:`~coughclf.layers.SpecAugment`, compiled by the backend and
run in training mode (so the masks are drawn), on batches of random clips already on the
device; the host-to-device copy of each batch (float32, and int16 PCM) is timed apart, in
milliseconds. Beside it, in the same interleaved rounds: with ``--compare-torch``,
torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB`` + two frequency and two time masks on
the same device; and the reports' per-clip librosa loop on one CPU core (``--librosa-clips``).

No TensorFlow is imported unless Keras runs on it, so this runs on a GPU machine with only
JAX: ``KERAS_BACKEND=jax coughclf bench frontend --compare-torch``. (``bench pipeline``
measures the tf.data pipeline feeding the same front end.)
"""

import numpy as np

from coughclf.bench._measure import (compiled_call, describe_machine, interleaved_milliseconds, megabytes,
                                     synchronize, to_device)
from coughclf.bench.pipeline import HOP, N_FFT, N_MELS, SAMPLE_RATE, librosa_loop

HELP = "on-model log-mel + SpecAugment clips/s on the device vs torchaudio and librosa (any backend)"
NEEDS_TENSORFLOW = False


def add_arguments(parser):
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024],
                        help="clips per batch (default: 64 256 1024)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip duration (default: 5)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default: 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default: 2)")
    parser.add_argument("--librosa-clips", type=int, default=64,
                        help="clips of the one-core librosa loop per round (default: 64; 0 skips it)")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time torchaudio's log-mel + masks on the same device")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random clips and masks")


def front_end(samples, seed=0):
    """The Keras model timed here: ``[batch, samples]`` → log-mel → SpecAugment."""
    import keras

    from coughclf.layers import LogMelSpectrogram, SpecAugment

    inputs = keras.Input((samples,))
    features = LogMelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)(inputs)
    return keras.Model(inputs, SpecAugment(seed=seed)(features))


def run(args):
    from coughclf.errors import CoughclfError

    if min(args.batch_sizes) < 1 or args.repeats < 1 or args.warmup < 0 or args.librosa_clips < 0:
        raise CoughclfError("--batch-sizes and --repeats must be at least 1, --warmup and --librosa-clips "
                            "at least 0")
    if args.seconds * SAMPLE_RATE < N_FFT:
        raise CoughclfError(f"--seconds {args.seconds:g} is shorter than one {N_FFT}-sample frame")
    if args.compare_torch:
        from coughclf.bench._torch import check_torch_beside_backend

        check_torch_beside_backend()
    samples = int(round(args.seconds * SAMPLE_RATE))
    rng = np.random.default_rng(args.seed)
    forward = compiled_call(front_end(samples, args.seed), training=True)
    torch_front_end, torch_results = None, None
    if args.compare_torch:
        torch_front_end, torch_results = _torchaudio_front_end(args.seed)

    calls, clips_per_call = {}, {}
    for batch_size in args.batch_sizes:
        clips = (0.1 * rng.standard_normal((batch_size, samples))).astype("float32")
        pcm = np.round(clips * 32767).astype("int16")
        resident = to_device(clips)
        calls[f"keras_b{batch_size}"] = lambda resident=resident: synchronize(forward(resident))
        calls[f"host_to_device_b{batch_size}_ms"] = lambda clips=clips: to_device(clips)
        calls[f"host_to_device_int16_b{batch_size}_ms"] = lambda pcm=pcm: to_device(pcm)
        clips_per_call[f"keras_b{batch_size}"] = batch_size
        if torch_front_end is not None:
            calls[f"torchaudio_b{batch_size}"] = torch_front_end(clips)
            clips_per_call[f"torchaudio_b{batch_size}"] = batch_size
    if args.librosa_clips:
        audio = (0.1 * rng.standard_normal((args.librosa_clips, samples))).astype("float32")
        calls["librosa_one_core"] = lambda: librosa_loop(audio)
        clips_per_call["librosa_one_core"] = args.librosa_clips

    results = {"seconds": args.seconds, "samples": samples, "n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS,
               "repeats": args.repeats, "batch_megabytes": {
                   batch_size: megabytes(np.empty((batch_size, samples), "float32"))
                   for batch_size in args.batch_sizes}, **describe_machine()}
    timings = interleaved_milliseconds(calls, args.repeats, args.warmup, seed=args.seed)
    results["load_average_after"] = describe_machine()["load_average"]
    for name, timing in timings.items():
        if name in clips_per_call:
            results[f"{name}_clips_per_s"] = round(1000 * clips_per_call[name] / timing["median"], 1)
        else:
            results[name] = timing
    for batch_size in args.batch_sizes:
        if f"torchaudio_b{batch_size}" in timings:
            results[f"keras_over_torchaudio_b{batch_size}"] = round(
                results[f"keras_b{batch_size}_clips_per_s"] / results[f"torchaudio_b{batch_size}_clips_per_s"], 2)
    if torch_results is not None:
        results["torch"] = torch_results
    return results


def _torchaudio_front_end(seed):
    """``(make_call, description)``: ``make_call(clips)`` gives the timed call of torchaudio's front end
    on those clips, copied to the device once; ``(None, {"skipped": why})`` without torchaudio."""
    from coughclf.bench import _torch

    torch, torchaudio, missing = _torch.load(need_torchaudio=True)
    if missing:
        return None, {"skipped": missing}
    torch.manual_seed(seed)
    device = _torch.device(torch)
    transform = torch.nn.Sequential(_torch.log_mel(torchaudio, SAMPLE_RATE, N_FFT, HOP, N_MELS),
                                    _torch.spec_augment(torchaudio)).to(device)
    wait = _torch.synchronizer(torch)

    def make_call(clips):
        resident = torch.as_tensor(clips).to(device)

        def call():
            with torch.no_grad():
                transform(resident)
            wait()
        return call
    return make_call, _torch.describe(torch, torchaudio)
