"""``coughclf datasets``: every dataset loader with its task, options, citation and licence."""

import json

from coughclf.console import result

NEEDS_TENSORFLOW = False
HELP = "list the datasets coughclf can read, with options, citation, licence and download support"
EXAMPLE = "coughclf datasets --json"


def add_arguments(parser):
    parser.add_argument("name", nargs="?", help="show only this dataset")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def describe(spec):
    """A JSON-ready description of one registered dataset."""
    return {
        "name": spec.name,
        "task": spec.task,
        "description": spec.description,
        "citation": spec.citation,
        "licence": spec.licence,
        "homepage": spec.homepage,
        "options": dict(spec.options),
        "download": bool(spec.archives),
        "archives": [{"url": archive.url, "sha256": archive.sha256} for archive in spec.archives],
    }


def run(args):
    from coughclf import datasets

    names = [args.name] if args.name else datasets.available()
    entries = [describe(datasets.get(name)) for name in names]
    if args.json:
        result(json.dumps(entries, indent=2))
        return
    for entry in entries:
        download = "coughclf download" if entry["download"] else "no public archive"
        result(f"{entry['name']}  [{entry['task']}; download: {download}]")
        result(f"  {entry['description']}")
        for option, meaning in entry["options"].items():
            result(f"  option {option}: {meaning}")
        result(f"  licence: {entry['licence']}   homepage: {entry['homepage']}")
        result(f"  cite: {entry['citation']}")
        result()
    result("Give a dataset's options to 'coughclf prepare' (see 'coughclf prepare --help').")
