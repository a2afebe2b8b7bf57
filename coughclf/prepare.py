"""``coughclf prepare``: decode a dataset once into the prepared-data cache.

The cache format is defined in :mod:`coughclf.cache`. Clips are sorted by id and
cut into shards of ``shard_size`` clips (shard ``i`` holds clips
``[i * shard_size, (i + 1) * shard_size)``), so a re-run assigns every clip to
the same shard. Worker processes decode while this process writes one shard at a
time: memory holds at most two shards of audio, whatever the dataset's size.

Crash safety: a shard is written as ``shard-NNNNN.tfrecord.tmp``, then its part
file (``parts/shard-NNNNN.json``: its manifest and skipped rows) is renamed into
place, and the shard is renamed last. A shard with its final name is complete and
is not decoded again; ``manifest.csv`` is written after everything else, so its
presence marks a complete cache. The part files stay after the run: with them a
damaged shard (found by the size check on every run, or by reading every record with
``verify=True``) is decoded again on its own, which is how a re-run repairs a cache.

A file whose name is not UTF-8 text, a listed file that is missing, and anything
:func:`coughclf.audio.load_audio` refuses (a pipe or device, an implausible header, a file
longer than ``max_file_seconds``) go to ``skipped.csv`` with the reason, and the first few
reasons are printed; float audio above full scale is stored clipped and reported. Decoding
one file holds at most ``max_file_seconds`` of audio, whatever its header claims. A disk that fills up stops the
run with that said; the shards already written are kept for the next run.

After the shards, identical audio (same SHA-1 of the stored PCM) is reported in
``duplicates.csv``; the copies are moved into one split group and, with
``drop_conflicts``, copies that carry contradicting labels are removed.
"""

import collections
import errno
import hashlib
import json
import multiprocessing
import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from coughclf import segment as segmentation
from coughclf.audio import (DEFAULT_MAX_FILE_SECONDS, MISSING_REASON, AudioStream, load_audio, open_regular_file,
                            printable, to_pcm16)
from coughclf.cache import (FORMAT_VERSION, MANIFEST_COLUMNS, METADATA_PREFIX, SHARD_PATTERN, encode_example,
                            read_cache_info, read_csv, shard_file_record, verify_cache)
from coughclf.errors import AudioDecodeError, CoughclfError
from coughclf.files import atomic_path, write_csv, write_json

PART_PATTERN = "parts/shard-{index:05d}.json"
SKIPPED_COLUMNS = ("path", "reason")
DUPLICATE_COLUMNS = ("sha1", "id", "label", "conflict")
# cache.json keys that must match for a run to reuse an existing cache folder.
SETTING_KEYS = ("dataset", "data_dir", "options", "sample_rate", "shard_size", "trim_silence", "segment",
                "drop_conflicts", "max_file_seconds")
# What a cache written before a setting existed was made with.
_EARLIER_SETTINGS = {"max_file_seconds": DEFAULT_MAX_FILE_SECONDS}
# How many skipped files the summary names with their reasons (all are in skipped.csv).
SKIPS_SHOWN = 5
SEGMENT_ID = "{id}#{index:03d}"
NOT_UTF8_REASON = "file name is not valid UTF-8 text: rename it (e.g. convmv -f latin1 -t utf8)"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def prepare(dataset, data_dir, out, *, options=None, sample_rate=16000, shard_size=256, workers=None,
            trim_silence=None, segment=None, drop_conflicts=False, progress=True, verify=False,
            max_file_seconds=DEFAULT_MAX_FILE_SECONDS):
    """Prepare the registered ``dataset`` found in ``data_dir`` into the cache folder ``out``.

    ``options`` are the dataset loader's keyword options. Recordings longer than
    ``max_file_seconds`` are skipped (their headers say so before decoding). ``trim_silence`` and
    ``segment`` are None/False (off), True (defaults of :mod:`coughclf.segment`) or
    a dict of its keyword arguments; with ``segment`` every cough event becomes a
    clip ``{id}#{k:03d}`` with the recording's label and group. An existing complete cache
    is checked (shard sizes; with ``verify`` every record) and its damaged shards are decoded
    again. Returns the summary dict that :func:`format_summary` prints.
    """
    from coughclf import datasets

    spec = datasets.get(dataset)
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise CoughclfError(f"data folder {data_dir} does not exist; pass the folder that holds the "
                            f"{dataset} files with --data-dir (or fetch it: coughclf download {dataset})")
    settings = _settings(dataset, data_dir, options, sample_rate, shard_size, trim_silence, segment, drop_conflicts,
                         max_file_seconds)
    complete, repaired = _existing_cache_summary(Path(out), settings, verify)
    if complete:
        return complete
    clips = list(spec.list_clips(data_dir, **(options or {})))
    return _prepare(clips, Path(out), settings, spec.task, workers, progress, repaired)


def prepare_clips(clips, out, *, dataset_name="custom", data_dir=None, task="classification", options=None,
                  sample_rate=16000, shard_size=256, workers=None, trim_silence=None, segment=None,
                  drop_conflicts=False, progress=True, verify=False, max_file_seconds=DEFAULT_MAX_FILE_SECONDS):
    """Prepare any list of :class:`coughclf.datasets.Clip` into ``out`` (see :func:`prepare`).

    Manifest paths are relative to ``data_dir`` (default: the folder all clips share).
    """
    clips = list(clips)
    if not clips:
        raise CoughclfError(f"no clips to prepare into {out}: the dataset listed none")
    if data_dir is None:
        data_dir = os.path.commonpath([str(Path(clip.path).resolve().parent) for clip in clips])
    settings = _settings(dataset_name, Path(data_dir).resolve(), options, sample_rate, shard_size, trim_silence,
                         segment, drop_conflicts, max_file_seconds)
    complete, repaired = _existing_cache_summary(Path(out), settings, verify)
    return complete or _prepare(clips, Path(out), settings, task, workers, progress, repaired)


def format_summary(summary):
    """The lines ``coughclf prepare`` prints for a summary returned by :func:`prepare`."""
    root = summary["cache"]
    if summary["status"] == "complete":
        return f"cache {root} is complete: {summary['clips']} clips, nothing to do"
    duplicates = summary["duplicates"]
    missing = summary.get("missing", 0)
    skipped_notes = ([f"{missing} listed file{'s are' if missing != 1 else ' is'} missing"] if missing else []) + \
        ([f"reasons in {root}/skipped.csv"] if summary["skipped"] else [])
    lines = [f"repaired {summary['repaired']} damaged shard{'s' if summary['repaired'] != 1 else ''}"] \
        if summary.get("repaired") else []
    lines += [
        f"prepared {summary['dataset']} into {root}: {summary['clips']} clips in {summary['shards']} "
        f"shard{'s' if summary['shards'] != 1 else ''} "
        f"({summary['seconds']:.1f} s, {summary['clips_per_second']:.1f} clips/s)",
        "classes: " + (", ".join(f"{name} {count}" for name, count in summary["counts"].items()) or "none"),
        f"skipped: {summary['skipped']}" + (f" ({'; '.join(skipped_notes)})" if skipped_notes else ""),
        *_skip_lines(summary),
        f"duplicates: {duplicates['groups']} duplicate groups ({duplicates['clips']} clips), "
        f"{duplicates['conflicting']} with contradicting labels"
        + (f" (listed in {root}/duplicates.csv)" if duplicates["groups"] else ""),
    ]
    if duplicates["dropped"]:
        lines.append(f"dropped {duplicates['dropped']} clips whose identical copies carry contradicting labels")
    if summary.get("clipped"):
        lines.append(_clipped_note(summary) + f" (ids in {root}/cache.json, key clipped)")
    lone_class = _lone_class(summary)
    if lone_class:
        lines.append(f"warning: only one class ({lone_class}) in this cache: a classifier needs at least two")
    return "\n".join(lines)


def _skip_lines(summary):
    """The first skipped files with their reasons, indented, and how many more there are."""
    shown = summary.get("first_skipped", [])
    more = summary["skipped"] - len(shown)
    lines = [f"  {row['path']}: {row['reason']}" for row in shown]
    return lines + ([f"  ... and {more} more"] if shown and more else [])


def _clipped_note(summary):
    count = len(summary["clipped"])
    return (f"clipped: {count} clip{'s' if count != 1 else ''} held samples above full scale (peak up to "
            f"{summary['clipped_peak']:.2f}), stored clipped to [-1, 1]; float files, and lossy files (mp3, ogg, "
            "webm) of recordings clipped at the source, decode so")


def _lone_class(summary):
    """The only class of a classification cache that has one, else None."""
    present = [name for name, count in summary["counts"].items() if count]
    return present[0] if summary.get("task", "classification") == "classification" and len(present) == 1 else None


def _settings(dataset, data_dir, options, sample_rate, shard_size, trim_silence, segment, drop_conflicts,
              max_file_seconds):
    if int(shard_size) < 1:
        raise CoughclfError(f"shard size must be at least 1, got {shard_size}")
    if not float(max_file_seconds) > 0:
        raise CoughclfError(f"max_file_seconds must be a positive number of seconds, got {max_file_seconds}")
    settings = {
        "dataset": dataset,
        "data_dir": str(data_dir),
        "options": dict(options or {}),
        "sample_rate": int(sample_rate),
        "shard_size": int(shard_size),
        "trim_silence": _resolved(trim_silence, segmentation.TRIM_DEFAULTS, "trim_silence"),
        "segment": _resolved(segment, segmentation.SEGMENT_DEFAULTS, "segment"),
        "drop_conflicts": bool(drop_conflicts),
        "max_file_seconds": float(max_file_seconds),
    }
    return json.loads(json.dumps(settings))  # the form it takes in cache.json, so comparisons are exact


def _resolved(choice, defaults, name):
    if not choice:
        return None
    if choice is True:
        return dict(defaults)
    unknown = sorted(set(choice) - set(defaults))
    if unknown:
        raise CoughclfError(f"unknown {name} setting(s) {unknown}; valid: {', '.join(defaults)}")
    return {**defaults, **choice}


def _existing_cache_summary(root, settings, verify=False):
    """``(summary, 0)`` for a complete, undamaged cache made with ``settings``; ``(None, damaged shard
    count)`` when work remains (damaged shards are deleted, to be decoded again); an error when
    ``root`` holds a cache made with other settings."""
    if not (root / "cache.json").exists():
        return None, 0
    info = read_cache_info(root)
    made_with = {key: info.get(key, _EARLIER_SETTINGS.get(key)) for key in SETTING_KEYS}
    changed = [f"{key}: {made_with[key]!r} -> {settings[key]!r}" for key in SETTING_KEYS
               if made_with[key] != settings[key]]
    if changed:
        raise CoughclfError(f"{root} holds a cache prepared with other settings ({'; '.join(changed)}); "
                            f"choose a new --out folder, or delete {root} to prepare it again")
    if not (root / "manifest.csv").exists():
        return None, 0
    damaged = verify_cache(root, full=verify, info=info)
    if not damaged:
        return _summary(root, info, status="complete"), 0
    for shard, problem in damaged:
        print(f"coughclf prepare: {shard} is damaged ({problem}); decoding it again", file=sys.stderr)
        part = root / "parts" / Path(shard).with_suffix(".json").name
        for path in (Path(shard), part):
            path.unlink(missing_ok=True)
    (root / "manifest.csv").unlink()
    return None, len(damaged)


def _prepare(clips, root, settings, task, workers, progress, repaired=0):
    if settings["segment"] and task == "ctc":
        raise CoughclfError(f"cough segmentation cuts recordings apart, but the transcripts of "
                            f"{settings['dataset']} cover whole recordings; prepare it without --segment-coughs")
    started = time.monotonic()
    clips = sorted(clips, key=lambda clip: clip.id)
    _check_unique_ids(clips)
    classes = sorted({clip.label for clip in clips if clip.label is not None and _utf8(clip.label)})
    shard_size = settings["shard_size"]
    shards = [clips[start:start + shard_size] for start in range(0, len(clips), shard_size)]
    info = {"format": FORMAT_VERSION, **settings, "task": task, "classes": classes}
    try:
        (root / "shards").mkdir(parents=True, exist_ok=True)
        (root / "parts").mkdir(exist_ok=True)
        write_json(root / "cache.json", info)
        _remove_leftovers(root, len(shards))
        decoded = _write_missing_shards(root, shards, settings, classes, workers, progress)
        _finish(root, info, len(shards))
    except Exception as error:
        if _is_disk_full(error):
            raise CoughclfError(f"the disk is full while writing the cache {root} ({error}); free space on that "
                                "disk and run the same command again: the shards already written are kept") \
                from None
        raise
    elapsed = time.monotonic() - started
    summary = {**_summary(root, info, status="prepared"), "seconds": elapsed, "repaired": repaired,
               "clips_per_second": decoded / elapsed if elapsed > 0 else 0.0,
               "first_skipped": _first_skipped(root) if info["skipped"] else []}
    if summary["clipped"]:
        warnings.warn(f"{root}: {_clipped_note(summary)} (first: {summary['clipped'][0]})", stacklevel=3)
    if _lone_class(summary):
        warnings.warn(f"{root} holds only one class ({_lone_class(summary)}): a classifier needs at least two; "
                      "check the dataset's labels and options", stacklevel=3)
    return summary


def _first_skipped(root):
    """The first :data:`SKIPS_SHOWN` rows of ``skipped.csv``: path and reason."""
    return [{"path": row["path"], "reason": row["reason"]} for row in read_csv(root / "skipped.csv")[:SKIPS_SHOWN]]


def _is_disk_full(error):
    """Whether ``error`` (an OSError, or TensorFlow's error from a TFRecord write) means no space is left."""
    if isinstance(error, OSError):
        return error.errno in _DISK_FULL
    return "No space left on device" in str(error) or "Disk quota exceeded" in str(error)


def _utf8(text):
    try:
        str(text).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _write_missing_shards(root, shards, settings, classes, workers, progress):
    """Decode and write every shard not complete yet; returns how many clips that took."""
    pending = [index for index, shard in enumerate(shards) if not _shard_complete(root, index, shard)]
    pending_clips = sum(len(shards[index]) for index in pending)
    total = sum(len(shard) for shard in shards)
    writer = _ShardWriter(root, settings, {name: index for index, name in enumerate(classes)})
    decode_settings = (settings["sample_rate"], settings["trim_silence"], settings["segment"],
                       settings["max_file_seconds"])
    with _decoder(workers, pending_clips) as decode_map, \
            _progress_bar(total, total - pending_clips, progress) as bar:
        for index, decoded in _decoded_shards(decode_map, pending, shards, decode_settings):
            writer.write(index, shards[index], decoded, bar)
    return pending_clips


def _finish(root, info, shard_count):
    """Merge the shards' part files into skipped.csv, duplicates.csv, cache.json and, last, manifest.csv."""
    rows, skipped, clipped = _collected_parts(root, shard_count)
    duplicates = _duplicate_sets(rows + skipped)
    _join_duplicate_groups(rows, duplicates)
    conflicting = {sha1 for sha1, members in duplicates.items() if len({row["label"] for row in members}) > 1}
    dropped = []
    if info["drop_conflicts"]:
        dropped = [row for sha1 in conflicting for row in duplicates[sha1] if "shard" in row]
        _drop_from_shards(root, dropped)
        dropped_ids = {row["id"] for row in dropped}
        rows = [row for row in rows if row["id"] not in dropped_ids]
    write_csv(root / "skipped.csv", columns=SKIPPED_COLUMNS, rows=skipped)
    write_csv(root / "duplicates.csv", columns=DUPLICATE_COLUMNS,
              rows=[{"sha1": sha1, "id": row["id"], "label": row["label"], "conflict": sha1 in conflicting}
                    for sha1, members in sorted(duplicates.items()) for row in members])
    counts = collections.Counter(row["label"] for row in rows)
    records = collections.Counter(int(row["shard"]) for row in rows)
    info.update({
        "clips": len(rows),
        "counts": {name: counts.get(name, 0) for name in info["classes"]},
        "skipped": len(skipped),
        "missing": sum(row["reason"].startswith(MISSING_REASON) for row in skipped),
        "clipped": [clip_id for clip_id, _ in clipped],
        "clipped_peak": max((peak for _, peak in clipped), default=0.0),
        "shards": shard_count,
        "shard_files": {Path(SHARD_PATTERN.format(index=index)).name:
                        shard_file_record(root / SHARD_PATTERN.format(index=index), records[index])
                        for index in range(shard_count)},
        "duplicates": {"groups": len(duplicates), "clips": sum(len(members) for members in duplicates.values()),
                       "conflicting": len(conflicting), "dropped": len(dropped)},
    })
    write_json(root / "cache.json", info)
    metadata_columns = sorted({key for row in rows for key in row if key.startswith(METADATA_PREFIX)})
    write_csv(root / "manifest.csv", columns=MANIFEST_COLUMNS + tuple(metadata_columns), rows=rows)


def _summary(root, info, status):
    return {"cache": str(root), "status": status, "dataset": info["dataset"], "task": info.get("task"),
            "clips": info["clips"], "classes": info["classes"], "counts": info["counts"],
            "skipped": info["skipped"], "missing": info.get("missing", 0), "clipped": info.get("clipped", []),
            "clipped_peak": info.get("clipped_peak", 0.0),
            "shards": info["shards"], "duplicates": info["duplicates"]}


def _check_unique_ids(clips):
    repeated = [a.id for a, b in zip(clips, clips[1:]) if a.id == b.id]
    if repeated:
        raise CoughclfError(f"the dataset lists {len(repeated)} clip id(s) twice (e.g. {repeated[0]!r}); "
                            "clip ids must be unique — check the loader's options or the data folder")


def _remove_leftovers(root, shard_count):
    """Delete half-written files of a killed run and shards beyond the current clip list."""
    for leftover in (root / "shards").glob("*.tmp"):
        leftover.unlink()
    for leftover in (root / "parts").glob("*.tmp"):
        leftover.unlink()
    for pattern in ("shards/shard-*.tfrecord", "parts/shard-*.json"):
        for path in root.glob(pattern):
            if int(path.name.split(".")[0].split("-")[1]) >= shard_count:
                path.unlink()


def _shard_complete(root, index, shard):
    part_path = root / PART_PATTERN.format(index=index)
    if not (root / SHARD_PATTERN.format(index=index)).exists() or not part_path.exists():
        return False
    # The clip list may have changed since the shard was written (files added or removed).
    return json.loads(part_path.read_text())["clip_ids"] == [clip.id for clip in shard]


def _decode_clip(job):
    """Worker: one clip -> ([(record id, int16 PCM, sha1), ...], None, peak), or for a file that
    cannot be used (None, skip reason, sha1 of its bytes)."""
    clip_id, path, sample_rate, trim, segment, max_file_seconds, names_are_text = job
    if not names_are_text:
        return None, NOT_UTF8_REASON, _file_sha1(path)
    try:
        stream = AudioStream(path, sample_rate, max_file_seconds=max_file_seconds)
        audio = load_audio(path, sample_rate, stream=stream)
    except AudioDecodeError as error:
        return None, error.reason, _file_sha1(path)
    if trim:
        audio = segmentation.trim_silence(audio, sample_rate, **trim)
    if segment:
        events = segmentation.segment_events(audio, sample_rate, **segment)
        if not events:
            return None, "no sound event long and loud enough for the segmentation settings", _file_sha1(path)
        pieces = [(SEGMENT_ID.format(id=clip_id, index=k), audio[start:end]) for k, (start, end) in enumerate(events)]
    else:
        pieces = [(clip_id, audio)]
    records = []
    for record_id, piece in pieces:
        pcm = to_pcm16(piece)
        records.append((record_id, pcm, hashlib.sha1(pcm.tobytes()).hexdigest()))
    return records, None, stream.peak


def _file_sha1(path):
    """Content hash of a file that could not be decoded: byte-identical broken files are duplicates too.

    Only a regular file is read, and only as far as its size said ("" for anything else): a pipe
    would block, and /dev/zero or a /proc file would never end."""
    digest = hashlib.sha1()
    try:
        with open_regular_file(path) as (handle, remaining):
            while remaining > 0 and (chunk := handle.read(min(remaining, 1 << 20))):
                digest.update(chunk)
                remaining -= len(chunk)
    except (AudioDecodeError, OSError):
        return ""
    return digest.hexdigest()


def _silence_worker_stderr():
    # libmpg123 and libsndfile print warnings straight to fd 2 from C; in workers they would
    # tear through the progress bar, and every real problem reaches skipped.csv anyway.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


@contextmanager
def _decoder(workers, clip_count):
    """A ``map(function, items, chunksize)`` running in ``workers`` processes (default: all CPUs)."""
    workers = min(workers or os.cpu_count() or 1, max(clip_count, 1))
    if workers <= 1:
        yield lambda function, items, chunksize: map(function, items)
        return
    # fork where it is safe (Linux): workers start at once and need no importable __main__;
    # they only run numpy/soundfile/soxr, never TensorFlow, even if this process loaded it.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    with context.Pool(workers, initializer=_silence_worker_stderr) as pool:
        yield lambda function, items, chunksize: pool.imap(function, items, chunksize)


def _decoded_shards(decode_map, pending, shards, decode_settings):
    """(index, iterator of decode results) per pending shard, in order.

    The next shard is already decoding while the caller writes the current one, so
    workers do not wait on the writer and at most two shards' audio is in memory.
    """
    in_flight = collections.deque()
    for index in pending:
        jobs = [(clip.id, str(clip.path), *decode_settings,
                 all(_utf8(text) for text in (clip.id, clip.path, clip.label or "", clip.group)))
                for clip in shards[index]]
        chunksize = max(1, len(jobs) // (8 * (os.cpu_count() or 1)))
        in_flight.append((index, decode_map(_decode_clip, jobs, chunksize)))
        if len(in_flight) == 2:
            yield in_flight.popleft()
    yield from in_flight


class _ShardWriter:
    """Writes one shard's records, then its part file, then renames the shard into place."""

    def __init__(self, root, settings, label_indices):
        self.root = root
        self.data_dir = Path(settings["data_dir"])
        self.sample_rate = settings["sample_rate"]
        self.label_indices = label_indices

    def write(self, index, shard, decoded, bar):
        import tensorflow as tf

        shard_path = self.root / SHARD_PATTERN.format(index=index)
        rows, skipped, clipped = [], [], []
        with atomic_path(shard_path) as temporary:  # the shard gets its name last, after its part file
            with tf.io.TFRecordWriter(str(temporary)) as records:
                for clip, (pieces, reason, detail) in zip(shard, decoded):
                    path = printable(self._relative(clip.path))
                    if reason:
                        skipped.append({"path": path, "reason": reason, "id": printable(clip.id),
                                        "label": printable(clip.label or ""), "sha1": detail})
                    elif detail > 1.0:  # the peak of audio beyond full scale (PCM's -1.0 is not: it is stored)
                        clipped.append((clip.id, round(detail, 4)))
                    for record_id, pcm, sha1 in pieces or ():
                        label_index = self.label_indices.get(clip.label, -1)
                        records.write(encode_example(record_id, pcm, label_index, clip.transcript))
                        rows.append(self._row(clip, record_id, path, label_index, len(pcm), sha1, index))
                    bar.update(1)
            write_json(self.root / PART_PATTERN.format(index=index),
                       {"clip_ids": [clip.id for clip in shard], "rows": rows, "skipped": skipped, "clipped": clipped})

    def _relative(self, path):
        # The folders are resolved, the file name is not: a symbolic link is named as it is listed.
        path = Path(path)
        return Path(os.path.relpath(path.parent.resolve() / path.name, self.data_dir)).as_posix()

    def _row(self, clip, record_id, path, label_index, num_samples, sha1, shard_index):
        row = {
            "id": record_id, "path": path, "label": clip.label or "", "label_index": label_index,
            # An unnamed group is the recording itself, so its cough segments stay together.
            "group": clip.group or clip.id,
            "fold": "" if clip.fold is None else clip.fold, "split": clip.split or "",
            "duration": round(num_samples / self.sample_rate, 6), "num_samples": num_samples,
            "transcript": clip.transcript or "", "sha1": sha1, "shard": shard_index,
        }
        row.update({METADATA_PREFIX + key: "" if value is None else value for key, value in clip.metadata.items()})
        return row


def _progress_bar(total, done, enabled):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="clip", desc="prepare", disable=not enabled, file=sys.stderr)


def _collected_parts(root, shard_count):
    rows, skipped, clipped = [], [], []
    for index in range(shard_count):
        part = json.loads((root / PART_PATTERN.format(index=index)).read_text())
        rows.extend(part["rows"])
        skipped.extend(part["skipped"])
        clipped.extend(part.get("clipped", []))
    return rows, skipped, clipped


def _duplicate_sets(rows):
    """{sha1: [rows]} for every content that occurs more than once.

    Manifest rows carry the hash of their decoded PCM, skipped rows the hash of the
    file's bytes (byte-identical files that decode are PCM-identical too).
    """
    by_hash = collections.defaultdict(list)
    for row in rows:
        if row["sha1"]:
            by_hash[row["sha1"]].append(row)
    return {sha1: members for sha1, members in by_hash.items() if len(members) > 1}


def _join_duplicate_groups(rows, duplicates):
    """Give copies of one recording one split group.

    Groups linked by a shared recording are merged (union-find), so a speaker's
    other clips stay with the copies too. A merged group is named after a
    recording it holds: ``dup-<sha1 prefix>``. Skipped files (no group) take no part.
    """
    linked = {sha1: [row for row in members if "group" in row] for sha1, members in duplicates.items()}
    linked = {sha1: members for sha1, members in linked.items() if len(members) > 1}
    parent = {}

    def representative(group):
        parent.setdefault(group, group)
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    for members in linked.values():
        first = representative(members[0]["group"])
        for row in members[1:]:
            other = representative(row["group"])
            if other != first:
                parent[other] = first
    merged_sizes = collections.Counter(representative(group) for group in list(parent))
    names = {}
    for sha1, members in sorted(linked.items()):
        names.setdefault(representative(members[0]["group"]), f"dup-{sha1[:12]}")
    for row in rows:
        if row["group"] in parent:
            component = representative(row["group"])
            if merged_sizes[component] > 1:
                row["group"] = names[component]


def _drop_from_shards(root, dropped_rows):
    """Rewrite the shards that hold ``dropped_rows`` without those records."""
    import tensorflow as tf

    by_shard = collections.defaultdict(set)
    for row in dropped_rows:
        by_shard[row["shard"]].add(row["id"].encode())
    for index, dropped_ids in sorted(by_shard.items()):
        shard_path = root / SHARD_PATTERN.format(index=index)
        with atomic_path(shard_path) as temporary, tf.io.TFRecordWriter(str(temporary)) as records:
            for record in tf.data.TFRecordDataset(str(shard_path)).as_numpy_iterator():
                record_id = tf.train.Example.FromString(record).features.feature["id"].bytes_list.value[0]
                if record_id not in dropped_ids:
                    records.write(record)
