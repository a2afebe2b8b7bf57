"""``coughclf info``: what a prepared cache holds."""

import json

from coughclf.console import result

NEEDS_TENSORFLOW = False
HELP = "summarise a prepared cache: clips, classes, durations, groups, skipped files, duplicates"
EXAMPLE = "coughclf info prepared/covid19_cough --json"


def add_arguments(parser):
    parser.add_argument("cache", metavar="CACHE", help="a folder written by 'coughclf prepare'")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--verify", action="store_true",
                        help="read every record and check it against manifest.csv (ids, counts, audio hashes); "
                             "exit 2 naming each damaged shard (with --json: the outcome as 'verified')")


def describe_cache(path):
    """A JSON-ready summary of the complete cache at ``path``."""
    import collections

    import numpy as np

    from coughclf.cache import open_cache, read_csv

    cache = open_cache(path)
    durations = np.array([float(row["duration"]) for row in cache.manifest]) if cache.manifest else np.zeros(1)
    labels = collections.Counter(row["label"] for row in cache.manifest)
    skipped = read_csv(cache.root / "skipped.csv") if (cache.root / "skipped.csv").exists() else []
    duplicates = read_csv(cache.root / "duplicates.csv") if (cache.root / "duplicates.csv").exists() else []
    return {
        "cache": str(cache.root),
        "dataset": cache.info.get("dataset"),
        "task": cache.info.get("task"),
        "sample_rate": cache.sample_rate,
        "shards": len(cache.shard_paths),
        "clips": len(cache.manifest),
        "groups": len({row["group"] for row in cache.manifest}),
        "classes": {name: labels.get(name, 0) for name in cache.classes},
        "duration_seconds": {"total": float(durations.sum()), "min": float(durations.min()),
                             "median": float(np.median(durations)), "max": float(durations.max())},
        "splits": dict(sorted(collections.Counter(row["split"] for row in cache.manifest if row["split"]).items())),
        "folds": dict(sorted(collections.Counter(row["fold"] for row in cache.manifest if row["fold"]).items())),
        "skipped": len(skipped),
        "skipped_reasons": dict(collections.Counter(row["reason"] for row in skipped).most_common()),
        "duplicates": {
            "groups": len({row["sha1"] for row in duplicates}),
            "clips": len(duplicates),
            "conflicting": len({row["sha1"] for row in duplicates if row["conflict"] == "True"}),
        },
        "missing": cache.info.get("missing", 0),
        "clipped": cache.info.get("clipped", []),
        "clipped_peak": cache.info.get("clipped_peak", 0.0),
        "prepare": {key: cache.info.get(key) for key in ("trim_silence", "segment", "drop_conflicts", "options")},
    }


def _clock(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s"


def verify(path):
    """Read every record of the cache at ``path``; a one-line error names each damaged shard."""
    from coughclf.cache import open_cache, repair_hint, verify_cache
    from coughclf.errors import CoughclfError

    cache = open_cache(path)
    problems = verify_cache(cache.root, full=True, info=cache.info)
    if problems:
        listed = "; ".join(f"{shard}: {problem}" for shard, problem in problems)
        raise CoughclfError(f"{len(problems)} damaged shard(s): {listed}; {repair_hint(cache.root)}")
    return f"verified: {len(cache.shard_paths)} shards, {len(cache.manifest)} records match manifest.csv"


def run(args):
    verified = verify(args.cache) if args.verify else None
    summary = describe_cache(args.cache)
    if args.json:  # one document: the verification's outcome inside it
        result(json.dumps({**summary, "verified": verified} if verified else summary, indent=2))
        return
    if verified:
        result(verified)
    duration, duplicates = summary["duration_seconds"], summary["duplicates"]
    result(f"cache {summary['cache']}: {summary['dataset']} ({summary['task']}), {summary['sample_rate']} Hz, "
          f"{summary['shards']} shards")
    result(f"clips: {summary['clips']} from {summary['groups']} groups")
    if summary["classes"]:
        result("classes: " + ", ".join(f"{name} {count}" for name, count in summary["classes"].items()))
    result(f"duration: total {_clock(duration['total'])}; min {duration['min']:.2f} s, "
          f"median {duration['median']:.2f} s, max {duration['max']:.2f} s")
    for name in ("splits", "folds"):
        if summary[name]:
            result(f"{name}: " + ", ".join(f"{key} {count}" for key, count in summary[name].items()))
    reasons = "; ".join(f"{reason}: {count}" for reason, count in summary["skipped_reasons"].items())
    result(f"skipped: {summary['skipped']}" + (f" ({reasons})" if reasons else ""))
    result(f"duplicates: {duplicates['groups']} duplicate groups ({duplicates['clips']} clips), "
          f"{duplicates['conflicting']} with contradicting labels")
