"""The tf.data pipeline over a prepared cache: cropping, windows, balancing, filtering, determinism,
with the clips held in memory and streamed from the shards."""

import csv
import json
from collections import Counter

import numpy as np
import pytest

from coughclf.cache import FORMAT_VERSION, MANIFEST_COLUMNS, SHARD_PATTERN, encode_example, open_cache
from coughclf.errors import CoughclfError
from coughclf import pipeline
from coughclf.pipeline import DatasetOptions, class_weights, epoch_class_counts, make_dataset

RATE = 16000


def ramp(samples, start=1):
    """int16 PCM 1, 2, 3, ...: every sample names its own position, so crops can be checked exactly."""
    return (np.arange(samples) + start).astype(np.int16)


def write_cache(root, clips, *, shards=1, classes=("a", "b"), manifest_ids=None, metadata=None):
    """A prepared cache in the documented format.

    ``clips``: list of (id, int16 pcm, label_index[, transcript]); clip i goes to shard ``i % shards``.
    ``manifest_ids``: the ids the manifest lists (default all): a clip left out is in a shard only.
    ``metadata``: ``{id: {"meta_...": value}}``, extra manifest columns.
    """
    (root / "shards").mkdir(parents=True)
    import tensorflow as tf

    writers = [tf.io.TFRecordWriter(str(root / SHARD_PATTERN.format(index=i))) for i in range(shards)]
    rows = []
    for position, (clip_id, pcm, label_index, *transcript) in enumerate(clips):
        text = transcript[0] if transcript else ""
        writers[position % shards].write(encode_example(clip_id, pcm, label_index, text))
        if manifest_ids is None or clip_id in manifest_ids:
            rows.append({"id": clip_id, "label": classes[label_index] if label_index >= 0 else "",
                         "label_index": label_index, "num_samples": len(pcm), "duration": len(pcm) / RATE,
                         "transcript": text, "shard": position % shards, **(metadata or {}).get(clip_id, {})})
    for writer in writers:
        writer.close()
    with open(root / "manifest.csv", "w", newline="") as handle:
        extra = sorted({column for columns in (metadata or {}).values() for column in columns})
        table = csv.DictWriter(handle, list(MANIFEST_COLUMNS) + extra, restval="")
        table.writeheader()
        table.writerows(rows)
    (root / "cache.json").write_text(json.dumps({"format": FORMAT_VERSION, "classes": list(classes),
                                                 "sample_rate": RATE}))
    return open_cache(root)


def batches(dataset):
    """Every batch as numpy: a list of (inputs, labels)."""
    return [(_numpy(inputs), labels.numpy()) for inputs, labels in dataset]


def _numpy(inputs):
    return {k: v.numpy() for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.numpy()


def clips_by_id(dataset):
    """{clip id: (audio, label)} from a dataset made with ``with_ids=True`` (one entry per clip)."""
    found = {}
    for inputs, labels in batches(dataset):
        for clip_id, audio, label in zip(inputs["id"], inputs["audio"], labels):
            found.setdefault(clip_id.decode(), []).append((audio, label))
    return found


@pytest.fixture(params=[True, False], ids=["in_memory", "streamed"])
def in_memory(request):
    """Both ways of reading the clips: every behaviour below must hold for each."""
    return request.param


@pytest.fixture
def mixed_cache(tmp_path):
    """Eight clips of 0.25 s to 2 s over three shards, labels 0/1 alternating."""
    lengths = [4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000]
    clips = [(f"clip{i}", ramp(n, start=i * 100 + 1), i % 2) for i, n in enumerate(lengths)]
    return write_cache(tmp_path / "cache", clips, shards=3)


def test_eval_centre_crops_long_clips_and_centres_short_ones_exactly(mixed_cache, in_memory):
    found = clips_by_id(make_dataset(mixed_cache, mode="eval", clip_seconds=1.0, batch_size=3, with_ids=True,
                                     cache_in_memory=in_memory))
    assert len(found) == 8
    samples = RATE
    for i, length in enumerate([4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000]):
        (audio, label), = found[f"clip{i}"]
        source = ramp(length, start=i * 100 + 1).astype(np.float32) / 32768.0
        assert audio.shape == (samples,) and label == i % 2
        if length >= samples:
            start = (length - samples) // 2
            np.testing.assert_array_equal(audio, source[start:start + samples])
        else:
            before = (samples - length) // 2
            np.testing.assert_array_equal(audio[before:before + length], source)
            assert not audio[:before].any() and not audio[before + length:].any()


def test_train_random_crops_are_contiguous_pieces_of_the_clip_at_varying_offsets(mixed_cache, in_memory):
    lengths = [4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000]
    dataset = make_dataset(mixed_cache, mode="train", clip_seconds=0.5, batch_size=4, with_ids=True, seed=3,
                           cache_in_memory=in_memory)
    first_samples = {"clip0": set(), "clip7": set()}
    for _ in range(4):
        for clip_id, [(audio, _)] in clips_by_id(dataset).items():
            i = int(clip_id[4:])
            pcm = np.round(audio * 32768.0).astype(np.int64)
            present = np.flatnonzero(pcm)
            assert audio.shape == (8000,)
            # One contiguous run of the ramp, zero-padded around it only when the clip is short.
            assert np.all(np.diff(present) == 1) and np.all(np.diff(pcm[present]) == 1)
            assert i * 100 + 1 <= pcm[present[0]] and pcm[present[-1]] <= i * 100 + lengths[i]
            assert present.size == min(lengths[i], 8000)
            if clip_id in first_samples:
                first_samples[clip_id].add((int(present[0]), int(pcm[present[0]])))
    # Over 4 epochs neither the long clip's crop nor the short clip's placement stayed put.
    assert all(len(places) > 1 for places in first_samples.values())


def test_training_without_random_crops_places_every_clip_as_eval_does(mixed_cache, in_memory):
    evaluated = clips_by_id(make_dataset(mixed_cache, mode="eval", clip_seconds=0.5, batch_size=3, with_ids=True,
                                         cache_in_memory=in_memory))
    trained = make_dataset(mixed_cache, mode="train", clip_seconds=0.5, batch_size=4, with_ids=True, seed=3,
                           cache_in_memory=in_memory, random_crops=False)
    for _ in range(2):
        found = clips_by_id(trained)
        assert sorted(found) == sorted(evaluated)
        for clip_id, [(audio, _)] in found.items():
            np.testing.assert_array_equal(audio, evaluated[clip_id][0][0])


def windowed_clips(dataset, count):
    """``{clip index: (its padded float audio, its windows)}`` of the mixed cache, each clip's
    ``count`` windows checked for its label."""
    found = clips_by_id(dataset)
    assert sorted(found) == sorted(f"clip{i}" for i in range(8))
    clips = {}
    for clip_id, windows in found.items():
        i = int(clip_id[4:])
        length = [4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000][i]
        assert len(windows) == count and all(label == i % 2 for _, label in windows)
        padded = np.pad(ramp(length, start=i * 100 + 1), (0, max(8000 - length, 0))).astype(np.float32) / 32768.0
        clips[i] = padded, [audio for audio, _ in windows]
    return clips


def test_windows_cover_the_clip_evenly_with_its_label_and_id(mixed_cache, in_memory):
    dataset = make_dataset(mixed_cache, mode="eval", windows=3, window_seconds=0.5, batch_size=5, with_ids=True,
                           cache_in_memory=in_memory)
    for padded, windows in windowed_clips(dataset, 3).values():
        starts = np.round(np.linspace(0, max(len(padded) - 8000, 0), 3)).astype(int)
        expected = sorted(tuple(padded[s:s + 8000]) for s in starts)
        assert sorted(tuple(audio) for audio in windows) == expected


def test_windows_after_a_clip_crop_count_every_window_in_the_cardinality(mixed_cache):
    dataset = make_dataset(mixed_cache, mode="eval", clip_seconds=2.0, windows=9, window_seconds=1.0,
                           batch_size=4)
    assert dataset.cardinality().numpy() == 18  # 8 clips * 9 windows / 4
    assert sum(labels.size for _, labels in batches(dataset)) == 72


def test_random_windows_in_training_are_true_cuts_of_the_clip_drawn_anew_each_epoch(mixed_cache, in_memory):
    dataset = make_dataset(mixed_cache, mode="train", windows=3, window_seconds=0.5, batch_size=5, with_ids=True,
                           seed=2, cache_in_memory=in_memory, random_windows=True)
    starts_seen = {i: set() for i in range(8)}
    for _ in range(3):
        for i, (padded, windows) in windowed_clips(dataset, 3).items():
            for audio in windows:
                # the ramp's first value tells where the window starts; it must be a whole cut of the clip
                start = int(round(audio[0] * 32768.0)) - (i * 100 + 1)
                np.testing.assert_array_equal(audio, padded[start:start + 8000])
                starts_seen[i].add(start)
    # clips longer than a window got windows at more places than the 3 evenly spaced ones
    assert all(len(starts_seen[i]) > 3 for i in range(4, 8))
    assert starts_seen[0] == {0} and starts_seen[1] == {0}


def test_random_windows_need_windows():
    with pytest.raises(CoughclfError, match="random_windows"):
        DatasetOptions(random_windows=True)


def _unbalanced_cache(tmp_path, counts):
    clips = [(f"c{label}_{i}", ramp(2000, start=i + 1), label)
             for label, count in enumerate(counts) for i in range(count)]
    return write_cache(tmp_path / "cache", clips, shards=2, classes=tuple("abc"[:len(counts)]))


def test_oversampling_reaches_the_target_per_class_within_the_repeat_cap(tmp_path, in_memory):
    cache = _unbalanced_cache(tmp_path, [20, 3, 7])
    with pytest.warns(UserWarning, match="max_repeats=4"):
        dataset = make_dataset(cache, mode="train", clip_seconds=0.1, batch_size=8, balance="oversample",
                               balance_target=15, max_repeats=4, with_ids=True, cache_in_memory=in_memory)
    majority_subsets = set()
    for _ in range(3):
        uses = Counter(clip_id.decode() for inputs, _ in batches(dataset) for clip_id in inputs["id"])
        per_class = Counter(clip_id.split("_")[0] for clip_id in uses.elements())
        # 20 cut to 15; 3 clips capped at 4 uses = 12; 7 clips reach 15 as 2 or 3 uses each.
        assert per_class == {"c0": 15, "c1": 12, "c2": 15}
        assert all(uses[f"c1_{i}"] == 4 for i in range(3))
        assert sorted(uses[f"c2_{i}"] for i in range(7)) == [2] * 6 + [3]
        assert max(uses.values()) <= 4
        majority_subsets.add(frozenset(clip_id for clip_id in uses if clip_id.startswith("c0")))
    # The 15 of 20 majority clips are drawn again every epoch.
    assert len(majority_subsets) == 3


def test_balancing_within_a_column_equalises_every_cell(tmp_path, in_memory):
    # A label confounded with the channel: "phone" clips are mostly class 1, "app" clips mostly class 0.
    cells = {("app", 0): 9, ("app", 1): 2, ("phone", 0): 3, ("phone", 1): 6}
    clips, metadata = [], {}
    for (source, label), count in cells.items():
        for i in range(count):
            clip_id = f"c{label}_{source}{i}"
            clips.append((clip_id, ramp(2000, start=i + 1), label))
            metadata[clip_id] = {"meta_source": source}
    cache = write_cache(tmp_path / "cache", clips, shards=2, metadata=metadata)
    dataset = make_dataset(cache, mode="train", clip_seconds=0.1, batch_size=4, balance="oversample",
                           balance_within="meta_source", with_ids=True, cache_in_memory=in_memory)
    for _ in range(2):
        uses = Counter(clip_id.decode() for inputs, _ in batches(dataset) for clip_id in inputs["id"])
        per_cell = Counter(clip_id.split("_")[0] + clip_id.split("_")[1].rstrip("0123456789")
                           for clip_id in uses.elements())
        assert per_cell == {"c0app": 9, "c1app": 9, "c0phone": 9, "c1phone": 9}
        assert sorted(uses[f"c1_app{i}"] for i in range(2)) == [4, 5]  # 9 uses over 2 clips
    with pytest.raises(CoughclfError, match="no column 'meta_age'"):
        make_dataset(cache, balance="oversample", balance_within="meta_age")
    with pytest.raises(CoughclfError, match="needs a balance method"):
        make_dataset(cache, balance_within="meta_source")


def test_streamed_oversampling_works_whatever_the_global_seed(tmp_path):
    """keras.utils.set_random_seed(0) once broke it: TF compared the in-graph epoch key with 0 in Python."""
    import tensorflow as tf

    cache = _unbalanced_cache(tmp_path, [6, 2])
    for global_seed in (0, 7):
        tf.random.set_seed(global_seed)
        dataset = make_dataset(cache, mode="train", clip_seconds=0.1, batch_size=4, balance="oversample",
                               with_ids=True, cache_in_memory=False)
        uses = Counter(clip_id.decode().split("_")[0] for inputs, _ in batches(dataset) for clip_id in inputs["id"])
        assert uses == {"c0": 6, "c1": 6}


def test_undersampling_cuts_every_class_to_the_minority_and_changes_the_subset(tmp_path):
    cache = _unbalanced_cache(tmp_path, [12, 4])
    dataset = make_dataset(cache, mode="train", clip_seconds=0.1, batch_size=3, balance="undersample",
                           with_ids=True)
    majority_subsets = set()
    for _ in range(3):
        ids = [clip_id.decode() for inputs, _ in batches(dataset) for clip_id in inputs["id"]]
        assert len(ids) == len(set(ids)) == 8
        assert Counter(clip_id.split("_")[0] for clip_id in ids) == {"c0": 4, "c1": 4}
        majority_subsets.add(frozenset(i for i in ids if i.startswith("c0")))
    assert len(majority_subsets) > 1


def test_epoch_class_counts_follow_the_documented_targets():
    labels = [0] * 10132 + [1] * 720
    assert epoch_class_counts(labels, "oversample", 3500, 5) == {0: 3500, 1: 3500}
    assert epoch_class_counts(labels, "oversample") == {0: 10132, 1: 10132}
    assert epoch_class_counts(labels, "undersample") == {0: 720, 1: 720}
    assert epoch_class_counts(labels, "undersample", 1000) == {0: 1000, 1: 720}
    with pytest.warns(UserWarning, match="max_repeats"):
        assert epoch_class_counts(labels, "oversample", 4000, 5) == {0: 4000, 1: 3600}
    with pytest.raises(CoughclfError, match="balance method"):
        epoch_class_counts(labels, "smote")


def test_class_weights_match_hand_computed_values():
    labels = [0] * 6 + [1] * 3 + [2] * 1  # p = 0.6, 0.3, 0.1
    report = class_weights(labels, "report")  # (1 - p) / sum(1 - p) = (0.4, 0.7, 0.9) / 2
    assert report == pytest.approx({0: 0.2, 1: 0.35, 2: 0.45})
    inverse = class_weights(labels, "inverse")  # 10 / (3 n_i)
    assert inverse == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    assert class_weights([0] * 720 + [1] * 10132, "report") == pytest.approx(
        {0: 10132 / 10852, 1: 720 / 10852})
    with pytest.raises(CoughclfError, match="formula"):
        class_weights(labels, "sqrt")


def test_only_selected_manifest_clips_are_yielded(tmp_path):
    clips = [(f"k{i}", ramp(3000), i % 2) for i in range(6)]
    cache = write_cache(tmp_path / "cache", clips, shards=2, manifest_ids={"k0", "k1", "k2", "k4", "k5"})
    everything = clips_by_id(make_dataset(cache, mode="eval", batch_size=4, with_ids=True))
    assert sorted(everything) == ["k0", "k1", "k2", "k4", "k5"]  # k3 is in a shard, not in the manifest
    split = clips_by_id(make_dataset(cache, ["k5", "k1"], mode="train", batch_size=4, with_ids=True))
    assert sorted(split) == ["k1", "k5"]
    with pytest.raises(CoughclfError, match="not in"):
        make_dataset(cache, ["k3"], mode="eval")


def test_labels_come_from_the_manifest_so_relabelling_it_is_enough(tmp_path):
    cache = write_cache(tmp_path / "cache", [("x", ramp(100), 0), ("y", ramp(100), 1)])
    for row in cache.manifest:
        row["label_index"] = str(1 - int(row["label_index"]))
    found = clips_by_id(make_dataset(cache, mode="eval", batch_size=2, with_ids=True))
    assert {clip_id: label for clip_id, [(_, label)] in found.items()} == {"x": 1, "y": 0}


def test_default_clip_length_is_the_longest_selected_clip(mixed_cache):
    inputs, _ = next(iter(make_dataset(mixed_cache, ["clip1", "clip2"], mode="eval", batch_size=2)))
    assert inputs.shape == (2, 12000)


def test_same_seed_gives_the_same_batches_and_another_seed_does_not(mixed_cache, in_memory):
    def two_epochs(seed):
        dataset = make_dataset(mixed_cache, mode="train", clip_seconds=0.5, batch_size=3, seed=seed,
                               balance="oversample", with_ids=True, cache_in_memory=in_memory)
        return [batches(dataset) for _ in range(2)]

    def same(run_a, run_b):
        return all(np.array_equal(a[0]["audio"], b[0]["audio"]) and list(a[0]["id"]) == list(b[0]["id"])
                   for epoch_a, epoch_b in zip(run_a, run_b) for a, b in zip(epoch_a, epoch_b))

    first, again, other = two_epochs(7), two_epochs(7), two_epochs(8)
    assert same(first, again)
    assert not same(first, other)
    assert not same([first[0]], [first[1]])  # epochs differ too


def test_a_dataset_keyed_by_epoch_draws_each_epochs_batches_from_the_clock_alone(mixed_cache, in_memory):
    """As a resumed run: a fresh dataset whose clock says epoch 2 yields what the first yielded in its third
    iteration, however often it was iterated before; and the epochs still differ."""
    from coughclf.epoch_keys import keyed_by_epoch

    def dataset():
        with keyed_by_epoch() as clock:
            made = make_dataset(mixed_cache, mode="train", clip_seconds=0.5, batch_size=3, seed=7,
                                balance="oversample", shuffle_buffer=4, with_ids=True, cache_in_memory=in_memory)
        return made, clock

    def ids_and_audio(epoch_batches):
        return [(list(inputs["id"]), inputs["audio"].tolist()) for inputs, _ in epoch_batches]

    uninterrupted, clock = dataset()
    epochs = []
    for epoch in range(3):
        clock.epoch.assign(epoch)
        epochs.append(ids_and_audio(batches(uninterrupted)))
    assert epochs[0] != epochs[1] != epochs[2]
    resumed, clock = dataset()
    clock.epoch.assign(2)
    batches(resumed)  # an iteration too many (Keras may start one it does not read) changes nothing
    assert ids_and_audio(batches(resumed)) == epochs[2]


def test_keys_follow_the_clock_inside_an_active_block_and_the_iterations_elsewhere():
    from coughclf.epoch_keys import keyed_by_epoch, random_keys

    def two_iterations(keys):
        return [[int(key) for key in keys.take(3)] for _ in range(2)]

    with keyed_by_epoch():
        first, again = two_iterations(random_keys(5))
    assert first == again  # the clock did not move
    with keyed_by_epoch(active=False):
        first, again = two_iterations(random_keys(5))
    assert first != again
    first, again = two_iterations(random_keys(5))
    assert first != again


def test_variable_length_pads_each_batch_to_its_longest_clip_with_lengths(tmp_path, in_memory):
    clips = [(f"s{i}", ramp(n), -1, f"word {i}") for i, n in enumerate([1000, 5000, 3000, 7000, 2000])]
    cache = write_cache(tmp_path / "cache", clips, shards=2)
    seen = {}
    for inputs, labels in batches(make_dataset(cache, mode="eval", batch_size=2, variable_length=True,
                                               with_ids=True, cache_in_memory=in_memory)):
        assert inputs["audio"].shape[1] == inputs["length"].max()
        assert set(labels) == {-1}
        for clip_id, audio, length, text in zip(inputs["id"], inputs["audio"], inputs["length"],
                                                inputs["transcript"]):
            seen[clip_id.decode()] = length
            np.testing.assert_array_equal(audio[:length], ramp(length) / 32768.0)
            assert not audio[length:].any()
            assert text.decode() == f"word {clip_id.decode()[1:]}"
    assert seen == {"s0": 1000, "s1": 5000, "s2": 3000, "s3": 7000, "s4": 2000}


def test_bucketing_batches_short_and_long_clips_apart(tmp_path, in_memory):
    clips = [(f"s{i}", ramp(n), -1) for i, n in enumerate([1000, 9000, 1200, 9500, 1100, 9900])]
    cache = write_cache(tmp_path / "cache", clips)
    widths = sorted(inputs["audio"].shape[1] for inputs, _ in batches(
        make_dataset(cache, mode="train", batch_size=3, variable_length=True, bucket_boundaries=[0.5],
                     cache_in_memory=in_memory)))
    assert widths == [1200, 9900]


def test_parallel_reads_of_many_shards_yield_every_clip_exactly_once(tmp_path):
    clips = [(f"n{i:03d}", ramp(500 + i), i % 2) for i in range(60)]
    cache = write_cache(tmp_path / "cache", clips, shards=7)
    ids = [clip_id.decode() for inputs, _ in batches(make_dataset(cache, mode="eval", clip_seconds=0.05,
                                                                  batch_size=16, with_ids=True))
           for clip_id in inputs["id"]]
    assert sorted(ids) == [f"n{i:03d}" for i in range(60)]


@pytest.mark.parametrize("options, message", [
    ({"mode": "test"}, "mode"),
    ({"mode": "eval", "balance": "oversample"}, "balancing"),
    ({"variable_length": True, "clip_seconds": 1.0}, "variable_length"),
    ({"windows": 3}, "window_seconds"),
    ({"cache_in_memory": "yes"}, "cache_in_memory"),
    ({"audio_dtype": "float64"}, "audio_dtype"),
])
def test_contradictory_options_are_refused_with_a_clear_error(mixed_cache, options, message):
    with pytest.raises(CoughclfError, match=message):
        make_dataset(mixed_cache, **options)


def test_only_selected_clips_are_held_in_memory_with_their_transcripts(tmp_path):
    clips = [(f"t{i}", ramp(300 + i), -1, f"text {i}") for i in range(6)]
    cache = write_cache(tmp_path / "cache", clips, shards=3)
    found = {}
    for inputs, _ in batches(make_dataset(cache, ["t4", "t1"], mode="eval", batch_size=4, variable_length=True,
                                          with_ids=True, cache_in_memory=True)):
        for clip_id, audio, length, text in zip(inputs["id"], inputs["audio"], inputs["length"],
                                                inputs["transcript"]):
            found[clip_id.decode()] = (length, text.decode())
            np.testing.assert_array_equal(audio[:length], ramp(length) / 32768.0)
    # The ids' order is the evaluation order in memory.
    assert list(found) == ["t4", "t1"] and found == {"t4": (304, "text 4"), "t1": (301, "text 1")}


def test_a_manifest_clip_missing_from_the_shards_is_reported_when_reading_into_memory(mixed_cache):
    mixed_cache.manifest.append({"id": "ghost", "label_index": "0", "num_samples": "100"})
    with pytest.raises(CoughclfError, match="1 clips of manifest.csv are in no shard.*'ghost'"):
        make_dataset(mixed_cache, mode="eval", cache_in_memory=True)


def test_int16_audio_is_the_cached_pcm_and_pcm_to_float_gives_the_float32_batches(mixed_cache, in_memory):
    import keras

    from coughclf.layers import PCMToFloat

    options = dict(mode="train", clip_seconds=0.5, batch_size=3, seed=5, with_ids=True, cache_in_memory=in_memory)
    as_float = batches(make_dataset(mixed_cache, **options))
    as_int16 = batches(make_dataset(mixed_cache, audio_dtype="int16", **options))
    inputs = keras.Input((8000,), dtype="int16")
    to_float = keras.Model(inputs, PCMToFloat()(inputs))
    for (floats, _), (pcm, _) in zip(as_float, as_int16, strict=True):
        assert pcm["audio"].dtype == np.int16 and list(pcm["id"]) == list(floats["id"])
        np.testing.assert_array_equal(np.round(floats["audio"] * 32768).astype(np.int16), pcm["audio"])
        np.testing.assert_array_equal(to_float.predict(pcm["audio"], verbose=0), floats["audio"])


def test_auto_holds_small_selections_in_memory_and_streams_larger_ones(mixed_cache, monkeypatch):
    def first_epoch(cache_in_memory):
        return batches(make_dataset(mixed_cache, mode="train", clip_seconds=0.5, batch_size=8, seed=1,
                                    with_ids=True, cache_in_memory=cache_in_memory))[0][0]["id"].tolist()

    in_memory, streamed = first_epoch(True), first_epoch(False)
    assert in_memory != streamed  # the two ways shuffle differently (a full permutation vs blocks)
    assert first_epoch("auto") == in_memory
    monkeypatch.setattr(pipeline, "AUTO_IN_MEMORY_BYTES", 2 * 20000)  # below the 8 clips' 2 * 144000 bytes
    assert first_epoch("auto") == streamed


@pytest.mark.slow
def test_pipeline_benchmark_measures_every_method_on_the_same_clips():
    import argparse

    from coughclf.bench import pipeline as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    results = bench.run(parser.parse_args(["--clips", "6", "--seconds", "0.5", "--repeats", "1",
                                           "--batch-size", "4", "--no-fit"]))
    measured = results["0.5s"]
    assert measured["clips"] == 6
    for method in ("librosa", "pipeline", "pipeline_int16", "pipeline_streamed", "tf_signal", "pipeline_only",
                   "front_end_in_memory", "pipeline_cold", "pipeline_streamed_cold"):
        assert measured[f"{method}_clips_per_s"] > 0 and measured[f"{method}_cpu_ms_per_clip"] > 0
    ratio = measured["pipeline_clips_per_s"] / measured["librosa_clips_per_s"]
    # Both sides are rounded (ratios to 0.01, rates to 0.1 clips/s).
    assert measured["pipeline_over_librosa"] == pytest.approx(ratio, rel=0.02, abs=0.01)
