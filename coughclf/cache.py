"""The prepared-data cache: its on-disk format and a reader.

Layout of a cache folder (written by :mod:`coughclf.prepare`)::

    cache.json              what was prepared: see ``CacheInfo``
    manifest.csv            one row per clip (columns: MANIFEST_COLUMNS, then meta_* columns)
    skipped.csv             path,reason for every file that could not be used
    duplicates.csv          sha1,id,label,conflict for every clip whose audio occurs more than once
    shards/shard-NNNNN.tfrecord   tf.train.Example records, FEATURES below

A shard is complete once it carries its final name: writers write ``*.tmp`` and
rename. ``manifest.csv`` is written last, so its presence means the cache is complete.

Each record holds one clip as 16-bit PCM at ``sample_rate``; ``label`` is the index
into ``classes`` (-1 for speech corpora) and ``transcript`` is empty when absent.
"""

import csv
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


def open_cache(path) -> PreparedCache:
    """Open a cache folder written by ``coughclf prepare``; errors say how to make one."""
    root = Path(path)
    info_path, manifest_path = root / "cache.json", root / "manifest.csv"
    if not info_path.exists() or not manifest_path.exists():
        raise CoughclfError(f"{root} is not a complete prepared cache (no cache.json/manifest.csv); "
                            "run 'coughclf prepare DATASET --data-dir DIR --out CACHE' first")
    info = json.loads(info_path.read_text())
    if info.get("format") != FORMAT_VERSION:
        raise CoughclfError(f"{info_path} has cache format {info.get('format')}, this coughclf reads "
                            f"{FORMAT_VERSION}; prepare the data again")
    return PreparedCache(root=root, info=info, manifest=read_csv(manifest_path))
