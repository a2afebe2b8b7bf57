"""The prepare writer: cache round trip, skipped files, duplicates, resume after SIGKILL, CLI and info."""

import collections
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import deadline, handmade_wav, tone, write_audio

from coughclf.audio import load_audio
from coughclf.cache import MANIFEST_COLUMNS, SHARD_PATTERN, open_cache, parse_example, read_csv
from coughclf.cli import main
from coughclf.commands.info import describe_cache
from coughclf.commands.prepare import coerce_value, parse_options
from coughclf.datasets import Clip
from coughclf.errors import CoughclfError
from coughclf.prepare import format_summary, prepare, prepare_clips


def records(cache_dir):
    """{id: parsed record} of every record in the cache's shards, failing on a repeated id."""
    import tensorflow as tf

    shards = sorted(str(path) for path in Path(cache_dir, "shards").glob("shard-*.tfrecord"))
    found = {}
    for record in tf.data.TFRecordDataset(shards).map(parse_example).as_numpy_iterator():
        clip_id = record["id"].decode()
        assert clip_id not in found, f"{clip_id} stored twice"
        found[clip_id] = record
    return found


def shard_ids(cache_dir, index):
    import tensorflow as tf

    path = str(Path(cache_dir) / SHARD_PATTERN.format(index=index))
    return [record["id"].decode() for record in tf.data.TFRecordDataset(path).map(parse_example).as_numpy_iterator()]


def mixed_clips(folder):
    """Six clips in four formats, three rates, mono and stereo, two classes and three speakers."""
    specs = [("c0.wav", 8000, 1), ("c1.flac", 44100, 2), ("c2.ogg", 16000, 1), ("c3.wav", 16000, 2),
             ("c4.flac", 22050, 1), ("c5.wav", 48000, 1)]
    clips = []
    for index, (name, rate, channels) in enumerate(specs):
        signal = tone(seconds=0.3 + 0.1 * index, sample_rate=rate, frequency=300.0 + 100 * index, seed=index)
        if channels == 2:
            signal = np.stack([signal, 0.5 * signal], axis=1)
        label = "wet" if index % 2 else "dry"
        path = write_audio(folder / label / name, signal, rate)
        clips.append(Clip(id=f"clip{index}", path=path, label=label, group=f"speaker{index % 3}",
                          transcript="hello" if index == 0 else None, metadata={"age": 20 + index}))
    return clips


def test_cache_round_trip(tmp_path):
    clips = mixed_clips(tmp_path / "data")
    summary = prepare_clips(clips, tmp_path / "cache", dataset_name="mixed", data_dir=tmp_path / "data",
                            shard_size=4, workers=1, progress=False)
    assert summary["status"] == "prepared" and summary["clips"] == 6 and summary["shards"] == 2
    cache = open_cache(tmp_path / "cache")
    assert cache.classes == ["dry", "wet"]
    assert cache.info["counts"] == {"dry": 3, "wet": 3} and cache.info["sample_rate"] == 16000
    assert list(cache.manifest[0]) == list(MANIFEST_COLUMNS) + ["meta_age"]
    stored = records(tmp_path / "cache")
    for clip, row in zip(clips, cache.manifest):
        assert row["id"] == clip.id and row["path"] == f"{clip.label}/{clip.path.name}"
        assert int(row["label_index"]) == cache.classes.index(clip.label) == stored[clip.id]["label"]
        assert row["meta_age"] == str(clip.metadata["age"]) and row["group"] == clip.group
        decoded = load_audio(clip.path, 16000)
        np.testing.assert_allclose(stored[clip.id]["audio"], decoded, atol=1 / 32768)
        assert int(row["num_samples"]) == len(decoded) == stored[clip.id]["num_samples"]
        assert float(row["duration"]) == pytest.approx(len(decoded) / 16000)
    assert stored["clip0"]["transcript"] == b"hello"
    # Shard i holds the id-sorted clips [i * shard_size, (i + 1) * shard_size).
    assert shard_ids(tmp_path / "cache", 0) == ["clip0", "clip1", "clip2", "clip3"]
    assert shard_ids(tmp_path / "cache", 1) == ["clip4", "clip5"]
    assert {row["shard"] for row in cache.manifest if row["id"] == "clip5"} == {"1"}
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    # What each shard was made from stays, so that a damaged shard can be decoded again alone.
    assert sorted(path.name for path in (tmp_path / "cache" / "parts").iterdir()) == ["shard-00000.json",
                                                                                       "shard-00001.json"]


def test_unusable_files_are_skipped_and_the_run_goes_on(tmp_path):
    data = tmp_path / "data"
    clips = mixed_clips(data)
    good = write_audio(data / "dry" / "whole.wav", tone(seconds=1.0), 16000).read_bytes()
    broken = {"empty.wav": b"", "cut.wav": good[:len(good) // 2], "noise.flac": np.random.default_rng(1).bytes(3000)}
    for name, content in broken.items():
        (data / "dry" / name).write_bytes(content)
    write_audio(data / "dry" / "silent.wav", np.zeros(8000, np.float32), 16000)
    for name in [*broken, "silent.wav"]:
        clips.append(Clip(id=name, path=data / "dry" / name, label="dry"))
    summary = prepare_clips(clips, tmp_path / "cache", data_dir=data, shard_size=3, workers=2, progress=False)
    assert summary["clips"] == 6 and summary["skipped"] == 4
    reasons = {row["path"]: row["reason"] for row in read_csv(tmp_path / "cache" / "skipped.csv")}
    assert set(reasons) == {f"dry/{name}" for name in [*broken, "silent.wav"]}
    assert "empty" in reasons["dry/empty.wav"] and "truncated" in reasons["dry/cut.wav"]
    assert "silent" in reasons["dry/silent.wav"] and reasons["dry/noise.flac"]
    assert "skipped: 4" in format_summary(summary)
    assert set(records(tmp_path / "cache")) == {f"clip{index}" for index in range(6)}


def duplicate_clips(folder):
    """Two sets of identical audio: one whose copies disagree on the label, one whose copies agree."""
    cough = write_audio(folder / "a.wav", tone(frequency=500.0, seed=10), 16000, subtype="PCM_16")
    (folder / "b.wav").write_bytes(cough.read_bytes())  # byte-identical copy
    write_audio(folder / "c.flac", load_audio(cough), 16000, subtype="PCM_16")  # sample-identical, other format
    speech = write_audio(folder / "e.wav", tone(frequency=900.0, seed=11), 16000, subtype="PCM_16")
    (folder / "f.wav").write_bytes(speech.read_bytes())
    write_audio(folder / "g.wav", tone(frequency=1300.0, seed=12), 16000)
    write_audio(folder / "h.wav", tone(frequency=1700.0, seed=13), 16000)
    return [Clip("a", folder / "a.wav", "positive", "p1"), Clip("b", folder / "b.wav", "negative", "p2"),
            Clip("c", folder / "c.flac", "positive", "p3"), Clip("e", folder / "e.wav", "positive", "p4"),
            Clip("f", folder / "f.wav", "positive", "p5"), Clip("g", folder / "g.wav", "negative", "p4"),
            Clip("h", folder / "h.wav", "negative", "p6")]


def test_duplicates_share_a_group_and_conflicts_are_reported(tmp_path):
    summary = prepare_clips(duplicate_clips(tmp_path / "data"), tmp_path / "cache", workers=1, progress=False)
    assert summary["duplicates"] == {"groups": 2, "clips": 5, "conflicting": 1, "dropped": 0}
    assert "2 duplicate groups (5 clips), 1 with contradicting labels" in format_summary(summary)
    listed = read_csv(tmp_path / "cache" / "duplicates.csv")
    assert {row["id"]: row["conflict"] for row in listed} == {"a": "True", "b": "True", "c": "True",
                                                               "e": "False", "f": "False"}
    group = {row["id"]: row["group"] for row in open_cache(tmp_path / "cache").manifest}
    assert group["a"] == group["b"] == group["c"]
    assert group["e"] == group["f"] == group["g"]  # g shares speaker p4 with e, so it joins e's copy
    assert len({group["a"], group["e"], group["h"]}) == 3 and group["h"] == "p6"


def test_drop_conflicts_removes_every_contradicting_copy(tmp_path):
    summary = prepare_clips(duplicate_clips(tmp_path / "data"), tmp_path / "cache", workers=1, progress=False,
                            drop_conflicts=True)
    assert summary["clips"] == 4 and summary["duplicates"]["dropped"] == 3
    assert "dropped 3 clips" in format_summary(summary)
    kept = ["e", "f", "g", "h"]
    assert [row["id"] for row in open_cache(tmp_path / "cache").manifest] == kept
    assert sorted(records(tmp_path / "cache")) == kept


def test_complete_cache_is_reused_and_other_settings_are_refused(tmp_path):
    clips = mixed_clips(tmp_path / "data")
    prepare_clips(clips, tmp_path / "cache", workers=1, progress=False)
    again = prepare_clips(clips, tmp_path / "cache", workers=1, progress=False)
    assert again["status"] == "complete"
    assert format_summary(again) == f"cache {tmp_path / 'cache'} is complete: 6 clips, nothing to do"
    with pytest.raises(CoughclfError, match=r"sample_rate: 16000 -> 8000.*new --out"):
        prepare_clips(clips, tmp_path / "cache", sample_rate=8000, workers=1, progress=False)


def test_cough_segments_become_clips_of_their_recording(tmp_path):
    rng = np.random.default_rng(0)
    audio = 1e-3 * rng.standard_normal(3 * 16000)
    for start in (0.5, 2.0):
        audio[int(start * 16000):int((start + 0.3) * 16000)] += 0.5 * rng.standard_normal(int(0.3 * 16000))
    path = write_audio(tmp_path / "data" / "two_coughs.wav", audio.astype(np.float32), 16000)
    with pytest.warns(UserWarning, match="only one class"):
        summary = prepare_clips([Clip("rec", path, "positive", "patient7")], tmp_path / "cache", workers=1,
                                progress=False, trim_silence=True, segment={"threshold_db": -25.0})
    manifest = open_cache(tmp_path / "cache").manifest
    assert summary["clips"] == 2 and [row["id"] for row in manifest] == ["rec#000", "rec#001"]
    assert {(row["label"], row["group"], row["path"]) for row in manifest} == {("positive", "patient7",
                                                                                 "two_coughs.wav")}
    assert all(0.3 <= float(row["duration"]) < 0.6 for row in manifest)
    assert open_cache(tmp_path / "cache").info["segment"]["threshold_db"] == -25.0


def test_segmentation_is_refused_for_transcribed_speech(tmp_path):
    path = write_audio(tmp_path / "data" / "utterance.wav", tone(), 16000)
    with pytest.raises(CoughclfError, match="transcripts"):
        prepare_clips([Clip("u", path, transcript="yes no")], tmp_path / "cache", task="ctc", segment=True,
                      workers=1, progress=False)


RUN_IN_CHILD = """
import sys
from pathlib import Path
from coughclf.datasets import Clip
from coughclf.prepare import prepare_clips
folder, out = Path(sys.argv[1]), sys.argv[2]
clips = [Clip(id=path.stem, path=path, label=path.stem[-1]) for path in sorted(folder.glob("*.wav"))]
prepare_clips(clips, out, shard_size=4, workers=1, progress=False)
"""


def test_resume_after_sigkill_stores_every_clip_exactly_once(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    for index in range(48):
        write_audio(data / f"clip{index:02d}_{index % 3}.wav",
                    np.stack([tone(2.0, 44100, 200.0 + 20 * index, seed=index)] * 2, axis=1), 44100)
    child = subprocess.Popen([sys.executable, "-c", RUN_IN_CHILD, str(data), str(cache)], start_new_session=True)
    first_shard = cache / SHARD_PATTERN.format(index=0)
    deadline = time.monotonic() + 180
    while not first_shard.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert first_shard.exists() and not (cache / "manifest.csv").exists(), "the run was not cut half-way"
    finished = {path: path.stat().st_mtime_ns for path in (cache / "shards").glob("shard-*.tfrecord")}
    assert 1 <= len(finished) < 12

    clips = [Clip(id=path.stem, path=path, label=path.stem[-1]) for path in sorted(data.glob("*.wav"))]
    resumed = prepare_clips(clips, cache, shard_size=4, workers=1, progress=False)
    assert resumed["status"] == "prepared" and resumed["clips"] == 48
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # not decoded again
    ids = [row["id"] for row in open_cache(cache).manifest]
    assert ids == sorted(clip.id for clip in clips)
    assert sorted(records(cache)) == ids
    third = prepare_clips(clips, cache, shard_size=4, workers=1, progress=False)
    assert "nothing to do" in format_summary(third)


def test_prepare_and_info_commands(tmp_path, capsys):
    data, cache = tmp_path / "data", tmp_path / "cache"
    lengths = {"cough/ann_1.wav": 0.4, "cough/bob_1.wav": 0.6, "cough/bob_2.flac": 1.0, "speech/ann_2.wav": 0.8,
               "speech/cid_1.wav": 0.5}
    for index, (name, seconds) in enumerate(lengths.items()):
        write_audio(data / name, tone(seconds=seconds, frequency=300.0 + 150 * index, seed=index), 16000)
    (data / "speech" / "cid_2.wav").write_bytes(b"RIFF")
    arguments = ["prepare", "folder", "--data-dir", str(data), "--out", str(cache), "--workers", "1",
                 "--no-progress", "--option", "group_pattern=^([a-z]+)_"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "5 clips" in printed and "classes: cough 3, speech 2" in printed and "skipped: 1" in printed
    assert main(["info", str(cache), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clips"] == 5 and info["groups"] == 3 and info["skipped"] == 1
    assert info["classes"] == {"cough": 3, "speech": 2}
    assert info["duration_seconds"]["min"] == pytest.approx(0.4)
    assert info["duration_seconds"]["median"] == pytest.approx(0.6)
    assert info["duration_seconds"]["max"] == pytest.approx(1.0)
    assert info["duration_seconds"]["total"] == pytest.approx(sum(lengths.values()))
    assert main(["info", str(cache)]) == 0
    assert "clips: 5 from 3 groups" in capsys.readouterr().out
    assert main(arguments) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nothing")]) == 2
    assert "not a complete prepared cache" in capsys.readouterr().err


def test_option_values_are_coerced():
    assert parse_options(["k=5", "ratio=0.8", "strict=true", "words=yes,no", "name=abc", "off=False"]) == {
        "k": 5, "ratio": 0.8, "strict": True, "words": "yes,no", "name": "abc", "off": False}
    assert coerce_value("yes") == "yes" and coerce_value("1e-3") == 0.001
    with pytest.raises(CoughclfError, match="KEY=VALUE"):
        parse_options(["novalue"])


REAL = {
    # dataset: (folder, clips, skipped, (duplicate groups, clips in them, conflicting groups))
    "covid19_cough": ("covid19_cough", 1322, 2, (115, 238, 112)),
    "fsdd": ("fsdd", 3000, 0, None),
    "speech_commands": ("speech_commands_sample", 300, 0, None),
    "yesno": ("yesno", 60, 0, None),
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(REAL))
def test_real_datasets_prepare_completely(shared_data, tmp_path, dataset):
    folder, clips, skipped, duplicates = REAL[dataset]
    summary = prepare(dataset, shared_data / folder, tmp_path / "cache", progress=False)
    assert summary["clips"] == clips and summary["skipped"] == skipped
    if duplicates:
        groups, members, conflicting = duplicates
        assert summary["duplicates"]["groups"] == groups
        assert summary["duplicates"]["clips"] == members
        assert summary["duplicates"]["conflicting"] == conflicting
        assert f"{groups} duplicate groups ({members} clips), {conflicting} with contradicting labels" in \
            format_summary(summary)
    info = describe_cache(tmp_path / "cache")
    assert info["clips"] == clips and sum(info["classes"].values()) == (clips if info["classes"] else 0)
    if dataset == "covid19_cough":
        with open(tmp_path / "cache" / "skipped.csv", newline="") as handle:
            skipped_paths = sorted(row["path"] for row in csv.DictReader(handle))
        assert [os.path.getsize(shared_data / folder / path) for path in skipped_paths] == [261, 261]
        manifest = open_cache(tmp_path / "cache").manifest
        conflicting_rows = [row for row in read_csv(tmp_path / "cache" / "duplicates.csv") if row["conflict"] == "True"]
        by_sha = collections.defaultdict(set)
        for row in manifest:
            by_sha[row["sha1"]].add(row["group"])
        assert all(len(groups) == 1 for groups in by_sha.values())  # copies never straddle two groups
        assert len({row["sha1"] for row in conflicting_rows}) == 112


@pytest.mark.slow
def test_bench_prepare_reports_flat_memory(tmp_path):
    from miniatures import write_fsdd

    from coughclf.bench import prepare as bench_prepare

    data = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob"), digits=range(5), takes=range(4))
    arguments = type("Arguments", (), {"data_dir": data, "dataset": "fsdd", "multiples": [1, 3], "workers": 2})
    results = bench_prepare.run(arguments)
    assert [run["prepared"] for run in results["runs"].values()] == [40, 120]
    assert results["under_limit"] and results["peak_memory_mib"] < 1024
    assert results["peak_growth"] < 1.2


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path):
    data = write_folder_of_two(tmp_path / "data")
    written = write_audio(data / "dry" / "cafe_1.wav", tone(seconds=0.5, seed=9), 16000)
    os.rename(os.fsencode(written), os.fsencode(data / "dry") + b"/caf\xe9_1.wav")  # Latin-1: no UTF-8 text
    summary = prepare("folder", data, tmp_path / "cache", workers=1, progress=False)
    assert summary["clips"] == 4 and summary["skipped"] == 1
    (row,) = read_csv(tmp_path / "cache" / "skipped.csv")
    assert row["path"] == "dry/caf\\xe9_1.wav" and "not valid UTF-8" in row["reason"]
    again = prepare("folder", data, tmp_path / "cache", workers=1, progress=False)
    assert again["status"] == "complete"


def write_folder_of_two(folder):
    for index, name in enumerate(("dry/ann_1.wav", "dry/bob_1.wav", "wet/ann_2.wav", "wet/bob_2.wav")):
        write_audio(folder / name, tone(seconds=0.4, frequency=300.0 + 200 * index, seed=index), 16000)
    return folder


def test_damaged_shards_are_found_on_open_by_verify_and_repaired_by_prepare(tmp_path, capsys):
    from coughclf.cache import verify_cache

    clips = mixed_clips(tmp_path / "data")
    cache = tmp_path / "cache"
    prepare_clips(clips, cache, shard_size=2, workers=1, progress=False)
    info = json.loads((cache / "cache.json").read_text())
    assert [entry["records"] for entry in info["shard_files"].values()] == [2, 2, 2]
    assert verify_cache(cache, full=True) == []
    assert main(["info", str(cache), "--verify"]) == 0
    assert "verified: 3 shards, 6 records" in capsys.readouterr().out
    # A truncated shard: its size no longer matches cache.json; opening the cache names it.
    shard = cache / SHARD_PATTERN.format(index=1)
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CoughclfError, match=r"shard-00001.tfrecord.*(size|bytes).*coughclf prepare"):
        open_cache(cache)
    assert main(["info", str(cache), "--verify"]) == 2
    assert "shard-00001.tfrecord" in capsys.readouterr().err
    # A flipped byte keeps the size: only the full check (info --verify, prepare --verify) sees it.
    other = cache / SHARD_PATTERN.format(index=2)
    content = bytearray(other.read_bytes())
    content[len(content) // 2] ^= 0xFF
    other.write_bytes(bytes(content))
    problems = verify_cache(cache, full=True)
    assert [Path(path).name for path, _ in problems] == ["shard-00001.tfrecord", "shard-00002.tfrecord"]
    untouched = (cache / SHARD_PATTERN.format(index=0)).stat().st_mtime_ns
    repaired = prepare_clips(clips, cache, shard_size=2, workers=1, progress=False, verify=True)
    assert repaired["status"] == "prepared" and repaired["repaired"] == 2 and repaired["clips"] == 6
    assert "repaired 2 damaged shards" in format_summary(repaired)
    assert verify_cache(cache, full=True) == []
    assert (cache / SHARD_PATTERN.format(index=0)).stat().st_mtime_ns == untouched
    assert sorted(records(cache)) == [f"clip{index}" for index in range(6)]
    # A deleted shard is found by the cheap check alone, and prepare without --verify repairs it.
    shard.unlink()
    assert prepare_clips(clips, cache, shard_size=2, workers=1, progress=False)["repaired"] == 1
    assert open_cache(cache).manifest and len(records(cache)) == 6


def test_broken_cache_files_are_named_with_the_fix(tmp_path):
    clips = mixed_clips(tmp_path / "data")
    cache = tmp_path / "cache"
    prepare_clips(clips, cache, workers=1, progress=False)
    manifest = (cache / "manifest.csv").read_bytes()
    (cache / "manifest.csv").unlink()
    with pytest.raises(CoughclfError, match=r"no manifest.csv.*did not finish.*coughclf prepare") as raised:
        open_cache(cache)
    assert "data_dir" not in str(raised.value)
    (cache / "manifest.csv").write_bytes(manifest)
    for content in ("not json at all", "[1, 2]", '{"dataset": "x"}'):
        (cache / "cache.json").write_text(content)
        with pytest.raises(CoughclfError, match=r"cache.json is not a coughclf cache description"):
            open_cache(cache)
        with pytest.raises(CoughclfError, match=r"cache.json is not a coughclf cache description"):
            prepare_clips(clips, cache, workers=1, progress=False)


def test_a_full_disk_while_preparing_is_a_clear_error_and_the_run_resumes(tmp_path, monkeypatch):
    import errno

    import coughclf.prepare as prepare_module

    clips = mixed_clips(tmp_path / "data")
    cache = tmp_path / "cache"
    real_write = prepare_module._ShardWriter.write
    calls = []

    def write_until_full(self, index, *arguments):
        calls.append(index)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, index, *arguments)

    monkeypatch.setattr(prepare_module._ShardWriter, "write", write_until_full)
    with pytest.raises(CoughclfError, match=rf"disk is full.*{cache.name}.*free space.*same command"):
        prepare_clips(clips, cache, shard_size=2, workers=1, progress=False)
    monkeypatch.setattr(prepare_module._ShardWriter, "write", real_write)
    summary = prepare_clips(clips, cache, shard_size=2, workers=1, progress=False)
    assert summary["clips"] == 6 and sorted(records(cache)) == [f"clip{index}" for index in range(6)]


def test_missing_audio_clipping_and_broken_symlinks_are_reported(tmp_path):
    data = tmp_path / "data"
    clips = mixed_clips(data)
    loud = write_audio(data / "wet" / "loud.wav", 3.0 * tone(seconds=0.5, seed=5), 16000, subtype="FLOAT")  # peak 1.5
    (data / "dry" / "link.wav").symlink_to(data / "dry" / "gone.wav")
    clips += [Clip("loud", loud, "wet"), Clip("link", data / "dry" / "link.wav", "dry"),
              Clip("listed", data / "dry" / "listed_but_absent.wav", "dry")]
    with pytest.warns(UserWarning, match=r"1 clip held samples above full scale"):
        summary = prepare_clips(clips, tmp_path / "cache", data_dir=data, workers=1, progress=False)
    assert summary["clips"] == 7 and summary["skipped"] == 2 and summary["missing"] == 2
    text = format_summary(summary)
    assert "skipped: 2 (2 listed files are missing" in text
    assert "clipped: 1 clip held samples above full scale (peak up to 1.5" in text
    reasons = {row["path"]: row["reason"] for row in read_csv(tmp_path / "cache" / "skipped.csv")}
    assert set(reasons) == {"dry/link.wav", "dry/listed_but_absent.wav"}
    assert describe_cache(tmp_path / "cache")["clipped"] == ["loud"]


def test_a_single_class_cache_is_a_warning(tmp_path):
    clips = [clip for clip in mixed_clips(tmp_path / "data") if clip.label == "dry"]
    with pytest.warns(UserWarning, match=r"only one class \(dry\)"):
        summary = prepare_clips(clips, tmp_path / "cache", workers=1, progress=False)
    assert "only one class" in format_summary(summary)


def test_a_folder_of_hostile_files_is_prepared_in_seconds_in_bounded_memory(tmp_path, capsys):
    """Issue 25: a 32 KB WAV claiming 1 Hz took 5.8 GB; a pipe and a /dev/zero link hung prepare forever."""
    import tracemalloc

    import tensorflow  # noqa: F401 (imported before memory is traced: its import is not prepare's work)

    data = write_folder_of_two(tmp_path / "data")
    handmade_wav(data / "dry" / "one_hertz.wav", 1)
    handmade_wav(data / "dry" / "liar.wav", 8000, declared_data_bytes=0x7FFFFF00)
    os.mkfifo(data / "wet" / "fifo.wav")
    (data / "wet" / "zero.wav").symlink_to("/dev/zero")
    tracemalloc.start()
    started = time.monotonic()
    try:
        with deadline(60):
            assert main(["prepare", "folder", "--data-dir", str(data), "--out", str(tmp_path / "cache"),
                         "--workers", "1", "--no-progress"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 30 and peak < 50 << 20  # the 1 Hz file alone would be 1 GB of float32
    reasons = {row["path"]: row["reason"] for row in read_csv(tmp_path / "cache" / "skipped.csv")}
    assert reasons == {
        "dry/liar.wav": "truncated: header declares 1073741696 samples, file holds 16000",
        "dry/one_hertz.wav": "implausible header: sample rate 1 Hz (recordings have 1000 to 384000 Hz)",
        "wet/fifo.wav": "a named pipe (FIFO), not an audio file",
        "wet/zero.wav": "a character device (a symbolic link to /dev/zero), not an audio file"}
    printed = capsys.readouterr().out
    assert "4 clips" in printed and "skipped: 4 (reasons in" in printed
    assert all(f"  {path}: {reason}" in printed for path, reason in reasons.items())  # not only in skipped.csv


def test_the_longest_file_is_a_setting_of_the_cache(tmp_path):
    data = write_folder_of_two(tmp_path / "data")  # 0.4 s clips
    handmade_wav(data / "wet" / "long.wav", 16000, seconds=3.0)
    summary = prepare("folder", data, tmp_path / "cache", workers=1, progress=False, max_file_seconds=2)
    assert summary["clips"] == 4 and summary["first_skipped"] == [
        {"path": "wet/long.wav", "reason": "too long: its header declares 3 s, more than the 2 s allowed "
                                           "(max_file_seconds: raise it to keep such files)"}]
    with pytest.raises(CoughclfError, match=r"other settings \(max_file_seconds: 2.0 -> 10800.0\)"):
        prepare("folder", data, tmp_path / "cache", workers=1, progress=False)
    info = json.loads((tmp_path / "cache" / "cache.json").read_text())
    del info["max_file_seconds"]  # a cache from before the setting: made without a limit, taken as the default
    (tmp_path / "cache" / "cache.json").write_text(json.dumps(info))
    assert prepare("folder", data, tmp_path / "cache", workers=1, progress=False)["status"] == "complete"
    with pytest.raises(CoughclfError, match="max_file_seconds must be a positive number"):
        prepare("folder", data, tmp_path / "other", max_file_seconds=0)


def test_the_summary_names_the_first_skipped_files_and_counts_the_rest(tmp_path):
    data = write_folder_of_two(tmp_path / "data")
    for index in range(7):
        (data / "dry" / f"empty_{index}.wav").write_bytes(b"")
    text = format_summary(prepare("folder", data, tmp_path / "cache", workers=1, progress=False))
    assert text.count(": empty file (0 bytes)") == 5 and "  ... and 2 more" in text


def test_decoding_one_file_takes_about_ten_bytes_per_stored_sample(tmp_path):
    """What bounds prepare's memory by max_file_seconds: three hours at 16 kHz stay under 2 GB per worker."""
    import tracemalloc

    from coughclf.prepare import _decode_clip

    path = write_audio(tmp_path / "minute.wav", tone(seconds=60.0, sample_rate=44100), 44100, subtype="PCM_16")
    tracemalloc.start()
    try:
        (record,), reason, _ = _decode_clip(("minute", str(path), 16000, None, None, 3600.0, True))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reason is None and len(record[1]) == 60 * 16000
    assert peak < 11 * 60 * 16000
