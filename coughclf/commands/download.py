"""``coughclf download``: fetch and extract a dataset's public archive."""

from coughclf.console import result
from coughclf.errors import CoughclfError

NEEDS_TENSORFLOW = False
HELP = "download and extract a public dataset archive (resumable, checksum-verified)"
EXAMPLE = "coughclf download fsdd --out data/"


def add_arguments(parser):
    parser.add_argument("dataset", help="dataset name (see 'coughclf datasets'); one with a public archive: "
                                        "coughvid, esc50, fsdd, ljspeech, speech_commands, yesno")
    parser.add_argument("--out", required=True, help="folder to download into; the dataset lands in OUT/DATASET")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extraction")
    parser.add_argument("--base-url", help="fetch the archive from this mirror instead ({base-url}/{archive name})")
    parser.add_argument("--max-size", type=float, default=None, metavar="GB",
                        help="refuse to extract more than this many GiB (default 200)")
    parser.add_argument("--max-ratio", type=float, default=None, metavar="X",
                        help="refuse an archive that inflates more than X times its size (default 100)")


def run(args):
    from coughclf.download import MAX_EXPANSION_RATIO, MAX_EXTRACTED_BYTES, fetch_dataset

    for flag, value in (("--max-size", args.max_size), ("--max-ratio", args.max_ratio)):
        if value is not None and not value > 0:
            raise CoughclfError(f"{flag} must be a positive number, got {value}")
    folder = fetch_dataset(args.dataset, args.out, base_url=args.base_url, keep_archives=args.keep_archive,
                           max_ratio=args.max_ratio or MAX_EXPANSION_RATIO,
                           max_bytes=int(args.max_size * 1024 ** 3) if args.max_size else MAX_EXTRACTED_BYTES)
    result(f"{args.dataset} is in {folder}")
    result(f"next: coughclf prepare {args.dataset} --data-dir {folder} --out CACHE")
