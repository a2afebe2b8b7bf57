"""The two ways :func:`coughclf.pipeline.make_dataset` reads the selected clips of a cache.

:class:`ClipsInMemory` reads them once and plans every epoch as whole tensors;
:class:`ShardRecords` streams the shards every epoch. Both take the pipeline's plan
(``coughclf.pipeline._Plan``: the checked options and what follows from the manifest)
and yield the batches :func:`coughclf.pipeline.make_dataset` documents; the module
docstring of :mod:`coughclf.pipeline` describes what each does and when it is chosen.
"""

from pathlib import Path

import numpy as np

from coughclf.cache import FEATURES
from coughclf.errors import CoughclfError

# Label the id tables return for clips that are not selected (real labels are >= -1).
_NOT_SELECTED = -(2 ** 31)
# Shards read at once: enough to mix the shards' contents before shuffling.
_MAX_INTERLEAVED_SHARDS = 16
# Clips windowed per vectorised call when windowing (streamed).
_CHUNK = 64
# Records parsed per call while reading clips into memory.
_LOAD_CHUNK = 256


class ClipsInMemory:
    """The selected clips' audio read once into memory; epochs are planned as whole tensors.

    An epoch is planned in one go, vectorised: the rows it yields (clip, and where the
    row's samples lie in memory), resampled, cropped and permuted. tf.data then only
    slices each row out of memory (one copy, a three-op function) and batches.
    """

    def __init__(self, shard_paths, selected_ids, labels):
        import tensorflow as tf

        position_of = {clip_id: position for position, clip_id in enumerate(selected_ids)}
        audio = [None] * len(selected_ids)
        transcripts = [None] * len(selected_ids)
        records = tf.data.TFRecordDataset(list(shard_paths), num_parallel_reads=tf.data.AUTOTUNE)
        for chunk in records.batch(_LOAD_CHUNK).map(_parse_records).prefetch(1):
            for clip_id, pcm, transcript in zip(chunk["id"].numpy(), chunk["pcm"].numpy(),
                                                chunk["transcript"].numpy()):
                position = position_of.get(clip_id.decode(), -1)
                if position >= 0:
                    audio[position] = np.frombuffer(pcm, "<i2")
                    transcripts[position] = transcript
        missing = [clip_id for clip_id, transcript in zip(selected_ids, transcripts) if transcript is None]
        if missing:
            raise CoughclfError(f"{len(missing)} clips of manifest.csv are in no shard under "
                                f"{Path(shard_paths[0]).parent} (first: {missing[0]!r}); prepare the cache again")
        lengths = np.array([clip.size for clip in audio], np.int64)
        self.lengths = tf.constant(lengths)
        self.begins = tf.constant(np.cumsum(lengths) - lengths)
        # The records' bytes go as soon as they are joined: the audio is held twice at most, briefly.
        joined = np.concatenate(audio)
        del audio
        self.audio = tf.constant(joined)
        self.ids = tf.constant(list(selected_ids))
        self.labels = tf.constant(labels)
        self.transcripts = tf.constant(transcripts, tf.string)

    def batches(self, plan):
        """One epoch of batches, planned from the epoch's key; iterating again gives the next epoch."""
        import tensorflow as tf

        # Functions that use the audio stay outside flat_map, which would hand them the clips anew every epoch.
        rows = plan.random_keys(stream=4).take(1).flat_map(lambda key: self.epoch_rows(plan, key))
        rows = rows.map(self.sliced, num_parallel_calls=tf.data.AUTOTUNE, deterministic=plan.deterministic)
        if plan.bucket_samples:
            batches = rows.bucket_by_sequence_length(
                lambda row: tf.shape(row["pcm"], tf.int32)[0], plan.bucket_samples,
                [plan.batch_size] * (len(plan.bucket_samples) + 1), drop_remainder=plan.drop_remainder)
        elif plan.variable_length:  # whole clips, padded to the batch's longest
            batches = rows.padded_batch(plan.batch_size, drop_remainder=plan.drop_remainder)
        else:
            # Rows of one width: a plain batch, which tf.data fuses with the slicing map (each row is
            # sliced straight into the batch's buffer, one copy less than padded_batch).
            batches = rows.batch(plan.batch_size, drop_remainder=plan.drop_remainder)
        return batches.map(lambda batch: self.examples(plan, batch), num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=plan.deterministic)

    def epoch_rows(self, plan, key):
        """The rows (clip position; first sample in memory, ``lo``, ``hi`` and width of the row, see
        ``_Plan.pieces``) of the epoch drawn from ``key``, as a dataset of single rows."""
        import tensorflow as tf

        positions = tf.range(tf.size(self.lengths))
        if plan.balance:
            positions = tf.repeat(positions, _epoch_repeats(plan, key))
        lengths = tf.gather(self.lengths, positions)
        seed = tf.stack([key, 1])
        draws = tf.random.stateless_uniform(tf.shape(positions), seed=seed, dtype=tf.float64)
        window_index, window_draws = None, None
        if plan.windows:
            window_index = tf.range(plan.windows)[None, :] + tf.zeros_like(positions)[:, None]
            window_draws = plan.window_draws(window_index, seed)
        shift, lo, hi, width = plan.pieces(lengths, draws, window_index, window_draws)
        rows = {"position": positions[:, None] + tf.zeros_like(lo, tf.int32),
                "first": tf.gather(self.begins, positions)[:, None] + shift + lo, "lo": lo, "hi": hi,
                "width": hi if plan.variable_length else tf.fill(tf.shape(lo), width)}
        rows = {name: tf.reshape(values, [-1]) for name, values in rows.items()}
        if plan.training:
            order = tf.argsort(tf.random.stateless_uniform(tf.shape(rows["position"]), seed=tf.stack([key, 2])))
            rows = {name: tf.gather(values, order) for name, values in rows.items()}
        return tf.data.Dataset.from_tensor_slices(rows)

    def sliced(self, row):
        """A row with its int16 samples, ``pcm``: ``[lo, hi)`` sliced out of memory, silence around."""
        import tensorflow as tf

        piece = self.audio[row["first"]:row["first"] + row["hi"] - row["lo"]]
        return {"position": row["position"], "pcm": tf.pad(piece, [[row["lo"], row["width"] - row["hi"]]])}

    def examples(self, plan, rows):
        import tensorflow as tf

        positions = rows["position"]
        clips = {"id": tf.gather(self.ids, positions), "label": tf.gather(self.labels, positions),
                 "num_samples": tf.gather(self.lengths, positions)}
        if plan.variable_length:
            clips["transcript"] = tf.gather(self.transcripts, positions)
        return plan.outputs(clips, rows["pcm"], rows_per_clip=1)


class ShardRecords:
    """The shards read every epoch: serialised records move through tf.data's own stages (the only
    per-clip function being the selection check) and are parsed, cut and decoded a batch at a time."""

    def __init__(self, shard_paths, selected_ids, labels):
        self.shard_paths = list(shard_paths)
        self.label_table = _table(selected_ids, labels, _NOT_SELECTED)
        self.position_table = _table(selected_ids, np.arange(len(selected_ids), dtype=np.int32), -1)

    def batches(self, plan):
        """One epoch of batches; iterating the dataset again gives the next epoch."""
        import tensorflow as tf

        records = self.selected_records(plan)
        if plan.windows:
            # Windows, not clips, are the examples: cut in chunks, then shuffled and batched one by one.
            examples = self.cut(plan, records.batch(_CHUNK)).unbatch()
            return self.shuffled(plan, examples).batch(plan.batch_size, drop_remainder=plan.drop_remainder)
        records = self.shuffled(plan, records)
        if plan.bucket_samples:
            return self.cut(plan, records.bucket_by_sequence_length(
                lambda record: tf.cast(self.header(record)["num_samples"], tf.int32), plan.bucket_samples,
                [plan.batch_size] * (len(plan.bucket_samples) + 1), drop_remainder=plan.drop_remainder))
        return self.cut(plan, records.batch(plan.batch_size, drop_remainder=plan.drop_remainder))

    def cut(self, plan, record_batches):
        """:meth:`examples` of every batch of records, each with its own random key."""
        import tensorflow as tf

        keys = plan.random_keys(stream=1)
        return tf.data.Dataset.zip(record_batches, keys).map(
            lambda batch, key: self.examples(plan, batch, tf.stack([key, 0])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=plan.deterministic)

    @staticmethod
    def shuffled(plan, dataset):
        """``dataset`` in training shuffled in blocks of ``plan.shuffle_buffer`` elements, each block
        permuted by a key of its own.

        Not ``Dataset.shuffle``: its order changes with every iteration in this process,
        where a key is the epoch's (:mod:`coughclf.epoch_keys`), which a resumed run draws again.
        """
        import tensorflow as tf

        if not plan.training:
            return dataset

        def permuted(block, key):
            size = tf.shape(tf.nest.flatten(block)[0])[0]
            order = tf.argsort(tf.random.stateless_uniform([size], seed=tf.stack([key, 0])))
            return tf.nest.map_structure(lambda values: tf.gather(values, order), block)

        # One block permuted at a time (a gather): blocks in flight would each hold shuffle_buffer records.
        blocks = tf.data.Dataset.zip(dataset.batch(plan.shuffle_buffer), plan.random_keys(stream=2))
        return blocks.map(permuted).unbatch()

    def selected_records(self, plan):
        """The serialised record of each use of a selected clip this epoch.

        Shards are read in parallel (in a shuffled order when training); records
        whose id is not selected are dropped and, when balancing, each selected one is
        repeated as often as this epoch's resampling says.
        """
        import tensorflow as tf

        def epoch_records(key):
            records = self.records(plan, key)
            if not plan.balance:
                return records.filter(lambda record: self.position(record) >= 0)
            uses = _epoch_repeats(plan, key)

            def repeated(record):
                position = self.position(record)
                times = tf.where(position >= 0, tf.gather(uses, tf.maximum(position, 0)), 0)
                return tf.data.Dataset.from_tensors(record).repeat(tf.cast(times, tf.int64))

            return records.flat_map(repeated)

        # The shard order and the resampling are drawn once per epoch: the epoch's records are built from its key.
        return plan.random_keys(stream=4).take(1).flat_map(epoch_records)

    def records(self, plan, epoch_key):
        import tensorflow as tf

        paths = tf.constant(self.shard_paths)
        if plan.training:
            # Dataset.shuffle cannot take the key, a tensor (TF's seed handling compares a seed with 0
            # in Python, which fails once the global seed is 0): a stateless permutation of it instead.
            noise = tf.random.stateless_uniform([len(self.shard_paths)],
                                                seed=tf.stack([epoch_key, tf.constant(0, tf.int64)]))
            paths = tf.gather(paths, tf.argsort(noise))
        shards = tf.data.Dataset.from_tensor_slices(paths)
        return shards.interleave(tf.data.TFRecordDataset,
                                 cycle_length=min(len(self.shard_paths), _MAX_INTERLEAVED_SHARDS),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=plan.deterministic)

    @staticmethod
    def header(record):
        """A record's id and length, parsed without copying its audio."""
        import tensorflow as tf

        return tf.io.parse_single_example(record, {"id": tf.io.FixedLenFeature([], tf.string),
                                                   "num_samples": tf.io.FixedLenFeature([], tf.int64)})

    def position(self, record):
        """Index of the record's clip in the selection, -1 when not selected."""
        return self.position_table.lookup(self.header(record)["id"])

    def examples(self, plan, records, seed):
        """A batch of serialised records -> ``(inputs, label)``: audio cut, padded or windowed, decoded."""
        import tensorflow as tf

        clips = _parse_records(records)
        clips["label"] = self.label_table.lookup(clips["id"])
        lengths = clips["num_samples"]
        draws = tf.random.stateless_uniform(tf.shape(lengths), seed=seed, dtype=tf.float64)
        window_index, window_draws = None, None
        if plan.windows:
            window_index = tf.tile(tf.range(plan.windows)[None, :], [tf.size(lengths), 1])
            window_draws = plan.window_draws(window_index, seed)
        shift, lo, hi, width = plan.pieces(lengths, draws, window_index, window_draws)
        return plan.outputs(clips, self.rows(clips["pcm"], shift, lo, hi, width), rows_per_clip=plan.windows or 1)

    @staticmethod
    def rows(pcm, shift, lo, hi, width):
        """``[n * k, width]`` int16 rows from each clip's ``[n, k]`` pieces, cut as bytes so that
        only kept samples are decoded."""
        import tensorflow as tf

        pieces = tf.reshape(tf.strings.substr(pcm[:, None], 2 * (lo + shift), 2 * (hi - lo)), [-1])
        lo = tf.reshape(lo, [-1])

        def with_leading_silence():
            static_width = tf.get_static_value(width)
            silence = (tf.constant(bytes(2 * int(static_width))) if static_width is not None
                       else tf.strings.reduce_join(tf.fill([width], b"\0\0")))
            return tf.strings.join([tf.strings.substr(silence, tf.zeros_like(lo), 2 * lo), pieces])

        pieces = tf.cond(tf.reduce_any(lo > 0), with_leading_silence, lambda: pieces)
        # Decoding pads with zeros at the end by itself.
        fixed_bytes = tf.cast(2 * width, tf.int32)
        return tf.io.decode_raw(pieces, tf.int16, fixed_length=fixed_bytes)


def _table(keys, values, default):
    import tensorflow as tf

    initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values))
    return tf.lookup.StaticHashTable(initializer, default_value=default)


def _parse_records(serialized):
    """A chunk of serialised records -> dict of [n] tensors, PCM still as bytes (decoded once cut)."""
    import tensorflow as tf

    kinds = {"bytes": tf.string, "int64": tf.int64}
    spec = {key: tf.io.FixedLenFeature([], kinds[kind]) for key, kind in FEATURES.items()}
    return tf.io.parse_example(serialized, spec)


def _epoch_repeats(plan, epoch_key):
    """How many times each selected clip is used this epoch (int32 per ``plan.ids`` entry).

    A class of ``n`` clips that gets ``m`` this epoch uses every clip ``m // n`` times
    and a random ``m % n`` of them once more: a random permutation per class, drawn
    from the epoch key, picks which.
    """
    import tensorflow as tf

    classes = np.array(sorted(plan.class_counts))
    class_of_clip = np.searchsorted(classes, plan.balance_keys)
    sizes = np.bincount(class_of_clip, minlength=classes.size)
    wanted = np.array([plan.class_counts[c] for c in classes])
    base, extra = wanted // sizes, wanted % sizes
    class_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    scores = tf.random.stateless_uniform([len(plan.ids)], seed=tf.stack([epoch_key, 0]), dtype=tf.float64)
    # Sorting by class, then by score, orders each class's clips randomly, classes in a row.
    order = tf.argsort(tf.constant(class_of_clip, tf.float64) + scores, stable=True)
    rank_in_class = tf.math.invert_permutation(order) - tf.constant(class_start[class_of_clip], tf.int32)
    once_more = rank_in_class < tf.constant(extra[class_of_clip], tf.int32)
    return tf.constant(base[class_of_clip], tf.int32) + tf.cast(once_more, tf.int32)
