"""``coughclf predict``: classify (or transcribe) audio files with a .tflite or .keras model."""

import sys
from pathlib import Path

from coughclf.errors import CoughclfError

HELP = "predict labels (or text, for the speech model) of audio files with a .tflite or .keras model"
EXAMPLE = "coughclf predict kws_cnn.tflite clip.wav long_recording.mp3 --json"


def add_arguments(parser):
    parser.add_argument("model", help=".tflite file (with its .tflite.json sidecar) or .keras file")
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files of any supported format and length")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    parser.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                        help="step between windows of a long file (default: half the model's clip length)")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="speech models: write only the words of this word list (one per line) instead of "
                             "decoding characters greedily")


def _table(results):
    rows = [(row["file"], row.get("label", row.get("text", "")),
             f"{row['probability']:.4f}" if "probability" in row else "", str(row["windows"]))
            for row in results if "error" not in row]
    speech = any("text" in row for row in results)
    header = ("file", "text" if speech else "label", "" if speech else "probability", "windows")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    for cells in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())


def run(args):
    import json

    from coughclf.predict import predict_files
    from coughclf.speech import read_lexicon

    lexicon = None
    if args.lexicon:
        if not Path(args.lexicon).is_file():
            raise CoughclfError(f"--lexicon {args.lexicon}: no such file; give a word list, one word per line")
        lexicon = read_lexicon(args.lexicon)
    results = predict_files(args.model, args.files, hop_seconds=args.hop, lexicon=lexicon)
    failed = [row for row in results if "error" in row]
    for row in failed:
        print(f"coughclf predict: error: {row['file']}: {row['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    elif len(failed) < len(results):
        _table(results)
    return 1 if failed else 0
