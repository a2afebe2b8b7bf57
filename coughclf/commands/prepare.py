"""``coughclf prepare``: decode a dataset once into a prepared cache."""

from coughclf.console import result
from coughclf.errors import CoughclfError

HELP = "decode a dataset once into a prepared cache (16-bit PCM TFRecord shards + manifest.csv)"
EXAMPLE = ("coughclf prepare covid19_cough --data-dir ../shared/data/covid19_cough --out prepared/covid19_cough\n"
           "  coughclf prepare speech_commands --data-dir DIR --out prepared/digits "
           "--option words=zero,one,two --segment-coughs --segment-option threshold_db=-35")

# Only true/false: "yes" and "no" are words a loader may be asked for (--option words=yes,no).
_BOOLEANS = {"true": True, "false": False}


def add_arguments(parser):
    parser.add_argument("dataset", help="dataset name (list them with 'coughclf datasets')")
    parser.add_argument("--data-dir", required=True, metavar="DIR", help="folder holding the dataset's files")
    parser.add_argument("--out", required=True, metavar="CACHE", help="cache folder to write (resumed if unfinished)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a dataset loader option (repeatable); numbers and true/false are converted, "
                             "anything else (comma-separated lists too) stays text, e.g. --option words=yes,no")
    parser.add_argument("--sample-rate", type=int, default=16000, help="target sample rate in Hz (default 16000)")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all CPUs)")
    parser.add_argument("--shard-size", type=int, default=256, help="clips per shard (default 256)")
    parser.add_argument("--trim-silence", action="store_true",
                        help="cut leading and trailing silence (energy threshold relative to the loudest frame)")
    parser.add_argument("--trim-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a trim setting: threshold_db, frame_length, hop_length, pad_seconds "
                             "(implies --trim-silence)")
    parser.add_argument("--segment-coughs", action="store_true",
                        help="split each recording into its sound events; each becomes a clip ID#NNN")
    parser.add_argument("--segment-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a segmentation setting: threshold_db, min_event_seconds, max_gap_seconds, "
                             "pad_seconds, frame_length, hop_length (implies --segment-coughs)")
    parser.add_argument("--drop-conflicts", action="store_true",
                        help="leave out every copy of a recording whose identical copies carry different labels")
    parser.add_argument("--max-file-seconds", type=float, default=None, metavar="SECONDS",
                        help="skip recordings longer than this (default: three hours), known from their headers "
                             "before decoding; it bounds the memory that decoding one file takes")
    parser.add_argument("--verify", action="store_true",
                        help="read every record of an existing cache and decode its damaged shards again "
                             "(without it, only shard sizes are checked)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_options(pairs, flag="--option"):
    """``["key=value", ...]`` -> dict of values coerced by :func:`coerce_value`."""
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise CoughclfError(f"{flag} {pair!r}: write it as KEY=VALUE, e.g. {flag} words=yes,no")
        options[key.strip()] = coerce_value(value.strip())
    return options


def coerce_value(text):
    """``"3"`` -> 3, ``"0.8"`` -> 0.8, ``"true"`` -> True, else the text itself.

    Comma-separated lists stay text: the loaders take them so (``words="yes,no"``), as in
    the config's ``[data] options``, so the CLI and a config name the same cache settings.
    """
    if text.lower() in _BOOLEANS:
        return _BOOLEANS[text.lower()]
    for number_type in (int, float):
        try:
            return number_type(text)
        except ValueError:
            pass
    return text


def run(args):
    from coughclf.audio import DEFAULT_MAX_FILE_SECONDS
    from coughclf.prepare import format_summary, prepare

    trim = parse_options(args.trim_option, "--trim-option") or args.trim_silence
    segment = parse_options(args.segment_option, "--segment-option") or args.segment_coughs
    summary = prepare(args.dataset, args.data_dir, args.out, options=parse_options(args.option),
                      sample_rate=args.sample_rate, shard_size=args.shard_size, workers=args.workers,
                      trim_silence=trim, segment=segment, drop_conflicts=args.drop_conflicts,
                      progress=not (args.no_progress or args.quiet), verify=args.verify,
                      max_file_seconds=DEFAULT_MAX_FILE_SECONDS if args.max_file_seconds is None
                      else args.max_file_seconds)
    result(format_summary(summary))
