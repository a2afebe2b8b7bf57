"""``coughclf export``: a run's model as a builtin-only TFLite file or a SavedModel for Serving."""

from pathlib import Path

from coughclf.console import result

HELP = "export a trained run to TFLite (builtin ops only, optional quantisation) or a SavedModel"
EXAMPLE = ("coughclf export saved_models/kws_cnn-20250101-120000 --format tflite --quantize int8 "
           "--out kws_cnn_int8.tflite\n"
           "  coughclf export saved_models/kws_cnn_streaming-20250101-120000 --format tflite --streaming --hop 0.02")


def add_arguments(parser):
    from coughclf.export import FORMATS, QUANTIZATIONS, STFT_CHOICES
    from coughclf.streaming.settings import HOP_HELP

    parser.add_argument("run", help="run folder written by 'coughclf train' (or a .keras file)")
    parser.add_argument("--format", choices=FORMATS, default="tflite",
                        help="tflite (phones, microcontrollers) or savedmodel (TensorFlow Serving)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="TFLite only: none (float32), float16, dynamic (int8 weights) or int8 (full "
                             "integer body calibrated on the run's training split, float front end)")
    parser.add_argument("--stft", choices=STFT_CHOICES, default="auto",
                        help="TFLite STFT: auto (builtin RFFT2D for power-of-two n_fft), fft, or matmul "
                             "(DFT matrix: runtimes without RFFT2D, e.g. TFLite Micro)")
    parser.add_argument("--representative", type=int, default=None, metavar="N",
                        help="int8: training windows to calibrate on (default 200; with --streaming: windows "
                             "streamed hop by hop, default 20)")
    parser.add_argument("--streaming", action="store_true",
                        help="TFLite only: the model's streaming form (one hop of audio in, the window's "
                             "probabilities out, its state as explicit inputs and outputs; docs/streaming.md)")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS", help=f"with --streaming: {HOP_HELP}")
    parser.add_argument("--out", default=None,
                        help="output path (default: RUN/model[_streaming][_QUANT].tflite or RUN/savedmodel)")


def default_output(run, export_format, quantize, streaming=False):
    run = Path(run)
    folder = run if run.is_dir() else run.parent
    if export_format == "savedmodel":
        return folder / "savedmodel"
    stem = "model_streaming" if streaming else "model"
    return folder / (f"{stem}.tflite" if quantize == "none" else f"{stem}_{quantize}.tflite")


def run(args):
    from coughclf.errors import CoughclfError
    from coughclf.export import (export_savedmodel, export_tflite, load_trained, representative_from_run,
                                 sidecar_path)

    out = Path(args.out) if args.out else default_output(args.run, args.format, args.quantize, args.streaming)
    if args.hop is not None and not args.streaming:
        raise CoughclfError("--hop is the streaming model's audio per call; add --streaming or drop --hop")
    if args.format == "savedmodel":
        if args.quantize != "none" or args.streaming:
            raise CoughclfError("--quantize and --streaming apply to --format tflite only; drop them for a SavedModel")
        path = export_savedmodel(args.run, out)
    else:
        representative = None
        if args.quantize == "int8" and args.representative:
            if not Path(args.run).is_dir():
                raise CoughclfError("--representative needs a run folder (its training split); give the run "
                                    "folder rather than the .keras file")
            representative = representative_from_run(args.run, load_trained(args.run)[0], args.representative)
        if args.streaming:
            from coughclf.streaming.export import export_streaming_tflite

            path = export_streaming_tflite(args.run, out, args.quantize, representative, stft=args.stft,
                                           hop_seconds=args.hop)
        else:
            path = export_tflite(args.run, out, args.quantize, representative, stft=args.stft)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    result(f"wrote {path} ({size / 1e6:.2f} MB) and {sidecar_path(path)}")
