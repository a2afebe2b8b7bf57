"""``coughclf download``: fetch and extract a dataset's public archive."""

NEEDS_TENSORFLOW = False
HELP = "download and extract a public dataset archive (resumable, checksum-verified)"
EXAMPLE = "coughclf download fsdd --out data/"


def add_arguments(parser):
    parser.add_argument("dataset", help="dataset name (see 'coughclf datasets'); one with a public archive: "
                                        "coughvid, esc50, fsdd, ljspeech, speech_commands, yesno")
    parser.add_argument("--out", required=True, help="folder to download into; the dataset lands in OUT/DATASET")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extraction")
    parser.add_argument("--base-url", help="fetch the archive from this mirror instead ({base-url}/{archive name})")


def run(args):
    from coughclf.download import fetch_dataset

    folder = fetch_dataset(args.dataset, args.out, base_url=args.base_url, keep_archives=args.keep_archive)
    print(f"{args.dataset} is in {folder}")
    print(f"next: coughclf prepare {args.dataset} --data-dir {folder} --out CACHE")
