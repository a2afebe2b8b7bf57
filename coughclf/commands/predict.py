"""``coughclf predict``: classify (or transcribe) audio files with a .tflite or .keras model."""

import sys
from pathlib import Path

from coughclf.console import result
from coughclf.errors import CoughclfError

HELP = "predict labels (or text, for the speech model) of audio files with a .tflite or .keras model"
EXAMPLE = ("coughclf predict kws_cnn.tflite clip.wav long_recording.mp3 --json\n"
           "  coughclf predict cough.tflite recordings/ --csv predictions.csv --timeline timelines/\n"
           "  coughclf predict yamnet:../shared/weights/yamnet.tflite clip.wav --timeline tags/\n"
           "  sox -d -r 16000 -c 1 -b 16 -e signed -t raw - | coughclf predict model_streaming.tflite --stream -")


def add_arguments(parser):
    parser.add_argument("model", help=".tflite file (with its .tflite.json sidecar), .keras file, or NAME:WEIGHTS: a "
                                      "registered model with its published weights and classes, no training "
                                      "(yamnet:yamnet.tflite tags AudioSet's 521 classes)")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="audio files of any supported format and length; a folder is searched recursively")
    parser.add_argument("--files-from", metavar="LIST",
                        help="also predict the files named in LIST, one path per line ('-' reads standard input; "
                             "blank lines and lines starting with # are ignored)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    parser.add_argument("--csv", metavar="FILE",
                        help="write one row per file (label, probability, windows, one column per class "
                             "probability, error) to FILE; failed files are included with their error")
    parser.add_argument("--timeline", metavar="FOLDER",
                        help="classifiers: write each file's per-window probabilities over time to "
                             "FOLDER/NAME.csv and a plot of them to FOLDER/NAME.png")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                        help="step between windows of a long file (default: half the model's clip length; "
                             "YAMNet: its 0.48 s patch hop; --stream: 20 ms in whole front-end frames, a "
                             "streaming .tflite's own)")
    parser.add_argument("--max-file-seconds", type=float, default=None, metavar="SECONDS",
                        help="refuse files longer than this (default: three hours), known from their headers "
                             "before decoding where they tell")
    parser.add_argument("--top", type=int, default=None, metavar="K",
                        help="classifiers: list each file's K most probable classes (default 5 for NAME:WEIGHTS "
                             "taggers, none otherwise)")
    stream = parser.add_argument_group("streaming (docs/streaming.md)")
    stream.add_argument("--stream", nargs="*", default=None, metavar="FILE",
                        help="run the model's streaming form hop by hop (a .tflite from 'coughclf export "
                             "--streaming', or a .keras model) over these files and those named before, and print "
                             "events (label, start, end, score) as JSON lines as they happen; '-' reads raw 16-bit "
                             "little-endian mono PCM at the model's sample rate from standard input")
    stream.add_argument("--threshold", type=float, default=0.5,
                        help="--stream: a label's probability that opens an event (default 0.5)")
    stream.add_argument("--refractory", type=float, default=0.5, metavar="SECONDS",
                        help="--stream: no new event of a label within this long after its last one (default 0.5)")
    stream.add_argument("--ignore", nargs="+", default=[], metavar="LABEL",
                        help="--stream: labels that never make events (e.g. _silence_ _unknown_)")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="speech models: write only the words of this word list (one per line) instead of "
                             "decoding characters greedily")


def read_file_list(source):
    """The paths listed in ``source`` (a file, or '-' for standard input)."""
    if source == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise CoughclfError(f"--files-from {source}: no such file; give a text file with one audio path "
                                "per line") from None
        except UnicodeDecodeError:
            raise CoughclfError(f"--files-from {source} is not a UTF-8 text file; give one audio path per "
                                "line") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _table(results):
    rows = [(row["file"], "; ".join(f"{label} {p:.2f}" for label, p in row["top"]) if "top" in row
             else row.get("label", row.get("text", "")),
             f"{row['probability']:.4f}" if "probability" in row else "", str(row["windows"]))
            for row in results if "error" not in row]
    speech = any("text" in row for row in results)
    header = ("file", "text" if speech else "label", "" if speech else "probability", "windows")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    for cells in (header, *rows):
        result("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())


def run(args):
    import json

    from coughclf.predict import load_predictor, predict_files, write_csv, write_timelines
    from coughclf.speech import read_lexicon

    files = list(args.files) + (read_file_list(args.files_from) if args.files_from else []) + (args.stream or [])
    if not files:
        raise CoughclfError("no audio files given; name files or folders after the model, or list them with "
                            "--files-from LIST")
    if args.stream is not None:
        return _run_stream(args, files)
    lexicon = None
    if args.lexicon:
        if not Path(args.lexicon).is_file():
            raise CoughclfError(f"--lexicon {args.lexicon}: no such file; give a word list, one word per line")
        lexicon = read_lexicon(args.lexicon)
    predictor = load_predictor(args.model)
    if args.timeline and predictor.metadata["task"] != "classification":
        raise CoughclfError("--timeline draws class probabilities over time: it applies to classifiers, "
                            f"and {args.model} is a speech-recognition model")
    if args.top is not None and args.top < 1:
        raise CoughclfError(f"--top {args.top}: give a positive number of classes")
    top = args.top or (5 if predictor.metadata.get("multi_label") else None)
    results = predict_files(args.model, files, hop_seconds=args.hop, predictor=predictor, lexicon=lexicon,
                            timeline=bool(args.timeline), max_file_seconds=args.max_file_seconds, top=top)
    if args.timeline:
        write_timelines(results, args.timeline, predictor.metadata.get("labels", []))
    if args.csv:
        write_csv(results, args.csv, predictor.metadata.get("labels", []))
    failed = [row for row in results if "error" in row]
    for row in failed:
        print(f"coughclf predict: error: {row['file']}: {row['error']}", file=sys.stderr)
    if args.json:
        result(json.dumps([{key: value for key, value in row.items() if key != "timeline"} for row in results],
                         indent=2))
    elif len(failed) < len(results):
        _table(results)
    return 1 if failed else 0


def _run_stream(args, files):
    """``--stream``: each file (or standard input) through the streaming model, events as JSON lines on stdout."""
    import json

    import numpy as np

    from coughclf.audio import DEFAULT_MAX_FILE_SECONDS, printable, stream_audio
    from coughclf.predict import expand_inputs, write_timelines
    from coughclf.streaming.events import EventDetector, pcm_blocks, stream_events
    from coughclf.streaming.runner import load_stream

    if args.csv or args.json or args.lexicon:
        raise CoughclfError("--stream prints one JSON line per event; drop --csv, --json and --lexicon")
    if not 0.0 < args.threshold <= 1.0 or args.refractory < 0:
        raise CoughclfError(f"--threshold must lie in (0, 1] and --refractory be >= 0 seconds, got "
                            f"{args.threshold} and {args.refractory}")
    stream = load_stream(args.model, args.hop)
    metadata = stream.metadata
    labels, rate = metadata["labels"], metadata["sample_rate"]
    unknown = sorted(set(args.ignore) - set(labels))
    if unknown:
        raise CoughclfError(f"--ignore {' '.join(unknown)}: not a label of {args.model} ({', '.join(labels)})")
    results, failed = [], 0
    for source in [path for name in files for path in (["-"] if name == "-" else expand_inputs([name]))]:
        name = "-" if source == "-" else printable(source)
        timeline = [] if args.timeline else None
        detector = EventDetector(labels, metadata["clip_samples"] / rate, args.threshold, args.refractory,
                                 args.ignore)
        stream.reset()
        try:
            blocks = (pcm_blocks(sys.stdin.buffer, stream.hop_samples) if source == "-" else
                      stream_audio(source, rate, max_file_seconds=args.max_file_seconds or DEFAULT_MAX_FILE_SECONDS))
            for event in stream_events(stream, blocks, detector, timeline):
                result(json.dumps({"file": name, **event}))
        except (CoughclfError, OSError) as error:
            failed += 1
            reason = getattr(error, "reason", None) or str(error)
            print(f"coughclf predict: error: {name}: {printable(reason)}", file=sys.stderr)
            continue
        if timeline:
            mean = np.mean([probabilities for _, _, probabilities in timeline], axis=0)
            results.append({"file": "stdin" if source == "-" else name, "label": labels[int(np.argmax(mean))],
                            "probability": float(np.max(mean)), "timeline": timeline})
    if args.timeline:
        write_timelines(results, args.timeline, labels)
    return 1 if failed else 0
