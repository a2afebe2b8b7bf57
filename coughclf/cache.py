"""The prepared-data cache: its on-disk format and a reader.

Layout of a cache folder (written by :mod:`coughclf.prepare`)::

    cache.json              what was prepared: see ``CacheInfo``
    manifest.csv            one row per clip (columns: MANIFEST_COLUMNS, then meta_* columns)
    skipped.csv             path,reason for every file that could not be used
    duplicates.csv          sha1,id,label,conflict for every clip whose audio occurs more than once
    shards/shard-NNNNN.tfrecord   tf.train.Example records, FEATURES below
    parts/shard-NNNNN.json  what each shard was made from (its clip list, rows and skipped files),
                            kept so that a damaged shard can be decoded again on its own

A shard is complete once it carries its final name: writers write ``*.tmp`` and
rename. ``manifest.csv`` is written last, so its presence means the cache is complete.
``cache.json`` records each shard's size in bytes and record count (``shard_files``):
:func:`open_cache` compares the sizes (a stat per shard), :func:`verify_cache` with
``full=True`` reads every record and checks its id and PCM hash against the manifest.

Each record holds one clip as 16-bit PCM at ``sample_rate``; ``label`` is the index
into ``classes`` (-1 for speech corpora) and ``transcript`` is empty when absent.
"""

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from coughclf.errors import CoughclfError

FORMAT_VERSION = 1
MANIFEST_COLUMNS = ("id", "path", "label", "label_index", "group", "fold", "split",
                    "duration", "num_samples", "transcript", "sha1", "shard")
METADATA_PREFIX = "meta_"
SHARD_PATTERN = "shards/shard-{index:05d}.tfrecord"

# Feature keys of each tf.train.Example.
FEATURES = {
    "id": "bytes",
    "pcm": "bytes",  # int16 little-endian, mono
    "num_samples": "int64",
    "label": "int64",
    "transcript": "bytes",
}


def encode_example(clip_id, pcm16, label_index, transcript=""):
    """Serialise one clip (``pcm16``: 1-D int16 numpy array) as a tf.train.Example string."""
    import tensorflow as tf

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    example = tf.train.Example(features=tf.train.Features(feature={
        "id": _bytes(clip_id.encode()),
        "pcm": _bytes(pcm16.astype("<i2").tobytes()),
        "num_samples": _int(len(pcm16)),
        "label": _int(label_index),
        "transcript": _bytes((transcript or "").encode()),
    }))
    return example.SerializeToString()


def parse_example(serialized):
    """tf.data map function: a serialised record -> dict(id, audio float32 in [-1, 1), num_samples, label, transcript)."""
    import tensorflow as tf

    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "pcm": tf.io.FixedLenFeature([], tf.string),
        "num_samples": tf.io.FixedLenFeature([], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "transcript": tf.io.FixedLenFeature([], tf.string),
    }
    record = tf.io.parse_single_example(serialized, spec)
    pcm = tf.io.decode_raw(record.pop("pcm"), tf.int16, little_endian=True)
    record["audio"] = tf.cast(pcm, tf.float32) / 32768.0
    return record


@dataclass
class PreparedCache:
    """A complete prepared-data cache, opened for reading."""

    root: Path
    info: dict
    manifest: list  # list[dict[str, str]], one per clip, in shard order

    @property
    def classes(self):
        return list(self.info["classes"])

    @property
    def sample_rate(self):
        return int(self.info["sample_rate"])

    @property
    def shard_paths(self):
        return sorted(str(p) for p in (self.root / "shards").glob("shard-*.tfrecord"))

    def metadata_columns(self):
        return [c for c in (self.manifest[0] if self.manifest else {}) if c.startswith(METADATA_PREFIX)]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_cache_info(root):
    """The dict in ``root/cache.json``; an error naming the file when it is not a cache description."""
    info_path = Path(root) / "cache.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        info = None
    if not isinstance(info, dict) or not {"format", "sample_rate", "classes"} <= set(info):
        raise CoughclfError(f"{info_path} is not a coughclf cache description (it should be the JSON that "
                            f"'coughclf prepare' writes); if {root} is not a cache, choose another folder, "
                            f"else delete it and prepare again")
    if info.get("format") != FORMAT_VERSION:
        raise CoughclfError(f"{info_path} has cache format {info.get('format')}, this coughclf reads "
                            f"{FORMAT_VERSION}; prepare the data again")
    return info


def repair_hint(root):
    return (f"run the 'coughclf prepare' command that made {root} again (add --verify after a failed "
            "'coughclf info --verify'): it decodes the damaged shards again")


def check_cache(path):
    """The ``cache.json`` dict of the complete, undamaged cache at ``path``; otherwise an error that says
    what is wrong with it (no cache, unfinished, not a cache description, a damaged shard) and the fix.

    Each shard's size is compared with ``cache.json`` (a stat per shard), so a truncated or missing
    shard is named here rather than as a data-loss error half-way through training.
    """
    root = Path(path)
    if not (root / "cache.json").exists():
        raise CoughclfError(f"{root} is not a complete prepared cache (no cache.json/manifest.csv); "
                            "run 'coughclf prepare DATASET --data-dir DIR --out CACHE' first")
    info = read_cache_info(root)
    if not (root / "manifest.csv").exists():
        raise CoughclfError(f"{root} has no manifest.csv: its preparation did not finish (interrupted, or still "
                            "running); run the same 'coughclf prepare' command again to finish it")
    problems = verify_cache(root, info=info)
    if problems:
        shard, problem = problems[0]
        more = f" (and {len(problems) - 1} more shards)" if len(problems) > 1 else ""
        raise CoughclfError(f"{shard} is damaged: {problem}{more}; {repair_hint(root)}")
    return info


def open_cache(path) -> PreparedCache:
    """Open a cache folder written by ``coughclf prepare`` after :func:`check_cache`."""
    info = check_cache(path)
    return PreparedCache(root=Path(path), info=info, manifest=read_csv(Path(path) / "manifest.csv"))


def shard_file_record(path, records):
    """The ``shard_files`` entry of cache.json for one shard."""
    return {"bytes": Path(path).stat().st_size, "records": int(records)}


def verify_cache(root, full=False, info=None):
    """``[(shard path, problem), ...]`` for the shards of a complete cache that are not as recorded.

    Without ``full``: every shard cache.json lists exists with its recorded size. With ``full``:
    every record is read too (TFRecord checksums), and its id, count and PCM SHA-1 must match
    ``manifest.csv``. Caches written before sizes were recorded are checked for missing shards only.
    """
    root = Path(root)
    info = info or read_cache_info(root)
    recorded = info.get("shard_files")
    if recorded is None:  # an older cache: only the shards its manifest names
        manifest = read_csv(root / "manifest.csv")
        recorded = {Path(SHARD_PATTERN.format(index=int(index))).name: None
                    for index in sorted({row["shard"] for row in manifest if row.get("shard")})}
    problems = []
    for name, expected in sorted(recorded.items()):
        path = root / "shards" / name
        if not path.exists():
            problems.append((str(path), "the file is missing"))
        elif expected and path.stat().st_size != expected["bytes"]:
            problems.append((str(path), f"{path.stat().st_size} bytes where {expected['bytes']} were written "
                                        "(truncated or overwritten)"))
    if full:
        damaged = {path for path, _ in problems}
        expected_rows = _rows_by_shard(read_csv(root / "manifest.csv"))
        for name in sorted(recorded):
            path = root / "shards" / name
            if str(path) not in damaged:
                problem = _read_problem(path, expected_rows.get(name, {}))
                if problem:
                    problems.append((str(path), problem))
    return sorted(problems)


def _rows_by_shard(manifest):
    by_shard = {}
    for row in manifest:
        if row.get("shard"):
            by_shard.setdefault(Path(SHARD_PATTERN.format(index=int(row["shard"]))).name, {})[row["id"]] = row
    return by_shard


def _read_problem(path, expected_rows):
    """Why the records of one shard do not match its manifest rows, or None."""
    import tensorflow as tf

    seen = set()
    try:
        for serialized in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            feature = tf.train.Example.FromString(serialized).features.feature
            clip_id = feature["id"].bytes_list.value[0].decode("utf-8", "replace")
            row = expected_rows.get(clip_id)
            if row is None:
                return f"holds a record {clip_id!r} that manifest.csv does not list there"
            if hashlib.sha1(feature["pcm"].bytes_list.value[0]).hexdigest() != row["sha1"]:
                return f"the audio of {clip_id!r} differs from what was written (its SHA-1 changed)"
            seen.add(clip_id)
    except (tf.errors.OpError, ValueError) as error:
        return f"unreadable after {len(seen)} records ({error.message if hasattr(error, 'message') else error})"
    missing = sorted(set(expected_rows) - seen)
    if missing:
        return f"lacks {len(missing)} records that manifest.csv lists (first: {missing[0]!r})"
    return None
