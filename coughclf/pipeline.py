"""The tf.data input pipeline: batches of waveforms from a prepared cache.

The pipeline yields audio, not features: the front end (log-mel, MFCC, ...) and
the augmentation are Keras layers at the front of the model, so they run on the
accelerator and are saved with it. What happens here, in order:

1. the shards are read in parallel (interleaved; in a shuffled order when training);
2. only records whose clip id is selected are kept (the manifest may list fewer
   clips than the shards hold; ``ids`` picks a split); with ``balance`` (training),
   each class is resampled to a per-class count every epoch (see :func:`epoch_class_counts`);
3. training: the records are shuffled;
4. batches of records are parsed, cut to ``clip_seconds`` (a random crop when
   training, the centre when evaluating; shorter clips are zero-padded, at a random
   offset when training, centred otherwise) and decoded from 16-bit PCM, all
   vectorised, a batch at a time; labels come from the manifest by clip id, so
   relabelling the manifest is enough. With ``windows``, clips are cut into evenly
   spaced windows (each an example with its clip's label and id) before shuffling;
   with ``variable_length`` each batch is padded to its longest clip;
5. prefetched.

Clips move through tf.data's own stages as serialised records, so the per-clip
cost is the reading itself; everything else is paid per batch.

Everything random derives from ``seed``: two datasets made with the same seed
yield the same batches in the same order, epoch after epoch (for the same global
TensorFlow seed, which ``keras.utils.set_random_seed`` sets), and each epoch
differs from the previous one (new crops, order and resampled subsets).
"""

import math
import warnings
from pathlib import Path

import numpy as np

from coughclf.cache import FEATURES, PreparedCache, open_cache
from coughclf.errors import CoughclfError

MODES = ("train", "eval")
BALANCE_METHODS = ("oversample", "undersample")
CLASS_WEIGHT_FORMULAS = ("report", "inverse")
# Label the id tables return for clips that are not selected (real labels are >= -1).
_NOT_SELECTED = -(2 ** 31)
# Shards read at once: enough to mix the shards' contents before shuffling.
_MAX_INTERLEAVED_SHARDS = 16
# Clips windowed per vectorised call when windowing.
_CHUNK = 64


def class_weights(labels, formula="report"):
    """Per-class loss weights from the training labels, as ``{class_index: weight}``.

    With ``p_i`` the fraction of clips in class ``i`` among the ``k`` classes present:

    * ``"report"``: ``(1 - p_i) / sum_j (1 - p_j)``, the COVID-19 cough report's
      formula (the weights sum to 1; with two classes each class gets the other's share);
    * ``"inverse"``: ``n / (k * n_i)``, the usual inverse frequency (scikit-learn's
      "balanced"; a balanced set gets 1 everywhere).

    Pass the result to ``model.fit(class_weight=...)``.
    """
    if formula not in CLASS_WEIGHT_FORMULAS:
        raise CoughclfError(f"unknown class-weight formula {formula!r}; use one of {CLASS_WEIGHT_FORMULAS}")
    classes, counts = np.unique(np.asarray(labels, dtype=np.int64), return_counts=True)
    if classes.size == 0 or classes[0] < 0:
        raise CoughclfError("class weights need the class indices (>= 0) of the training clips; "
                            "got none, or a speech corpus without classes")
    if formula == "report":
        complement = 1.0 - counts / counts.sum()
        if complement.sum() == 0:
            # A single class: its weight is the whole of the (trivial) loss.
            return {int(classes[0]): 1.0}
        weights = complement / complement.sum()
    else:
        weights = counts.sum() / (classes.size * counts)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def epoch_class_counts(labels, balance, balance_target=None, max_repeats=None):
    """How many clips of each class one training epoch holds, as ``{class_index: count}``.

    * ``"oversample"``: every class gets ``balance_target`` clips (default: the
      majority class's count). A smaller class repeats its clips — each one
      ``floor(target / n)`` or ``ceil(target / n)`` times — but never more than
      ``max_repeats`` times: a class that cannot reach the target within the cap
      gets ``max_repeats * n`` clips. A class larger than the target is cut to a
      random subset. The COVID-19 report's setting is
      ``balance_target=3500, max_repeats=5`` (720 COVID-19 clips, each used 4 or 5 times).
    * ``"undersample"``: every class is cut to a random subset of ``balance_target``
      clips (default: the minority class's count); smaller classes keep all theirs.
    * ``None``: every clip once.

    The subsets and the clips repeated once more change every epoch.
    """
    classes, counts = np.unique(np.asarray(labels, dtype=np.int64), return_counts=True)
    if balance is None:
        return {int(c): int(n) for c, n in zip(classes, counts)}
    if balance not in BALANCE_METHODS:
        raise CoughclfError(f"unknown balance method {balance!r}; use one of {BALANCE_METHODS} or None")
    if classes.size == 0 or classes[0] < 0:
        raise CoughclfError("balancing needs labelled clips; these clips have no class (a speech corpus?)")
    if max_repeats is not None and max_repeats < 1:
        raise CoughclfError(f"max_repeats must be at least 1, got {max_repeats}")
    if balance_target is not None and balance_target < 1:
        raise CoughclfError(f"balance_target must be at least 1 clip per class, got {balance_target}")
    if balance == "oversample":
        target = int(balance_target or counts.max())
        ceiling = counts * max_repeats if max_repeats else np.full_like(counts, target)
        per_class = np.minimum(target, ceiling)
        capped = classes[per_class < target]
        if capped.size:
            warnings.warn(f"classes {capped.tolist()} reach only max_repeats={max_repeats} times their "
                          f"clip count, below the balance target {target}", stacklevel=3)
    else:
        target = int(balance_target or counts.min())
        per_class = np.minimum(target, counts)
    return {int(c): int(n) for c, n in zip(classes, per_class)}


def make_dataset(cache, ids=None, *, mode="train", clip_seconds=None, windows=None, window_seconds=None,
                 batch_size=32, balance=None, balance_target=None, max_repeats=None, seed=0,
                 variable_length=False, with_ids=False, shuffle_buffer=1024, drop_remainder=False,
                 bucket_boundaries=None):
    """A ``tf.data.Dataset`` of batches from a prepared cache.

    Args:
        cache: a :class:`coughclf.cache.PreparedCache` (or the path of one).
        ids: the clip ids to use (a split); default every clip in the manifest.
        mode: ``"train"`` (seeded shuffle, random crops, balancing) or ``"eval"``
            (shard order, centre crops, every selected clip once).
        clip_seconds: fixed duration each clip is cut or zero-padded to; default the
            longest selected clip (with ``windows``: the whole clip, uncut).
        windows, window_seconds: cut each (cropped) clip into ``windows`` windows of
            ``window_seconds``, evenly spaced from its start to its end (overlapping or
            with gaps as needed; a clip shorter than a window is zero-padded); each
            window is one example with the clip's label and id.
        batch_size, drop_remainder: batching.
        balance, balance_target, max_repeats: per-epoch class resampling when
            training, see :func:`epoch_class_counts`.
        seed: seeds every random choice; ``None`` for unseeded and non-deterministic
            (slightly faster reads).
        variable_length: no cropping; each batch is zero-padded to its longest clip
            and carries ``length`` (samples) and ``transcript`` (speech recognition).
        bucket_boundaries: with ``variable_length``, clip durations in seconds that
            split clips into buckets batched separately (less padding).
        with_ids: also yield each clip's id.
        shuffle_buffer: clips held for shuffling when training, as whole 16-bit
            records (about ``shuffle_buffer * duration * 32`` KB; windows: cut windows).

    Returns:
        ``(audio [B, samples] float32, label [B] int32)`` batches;
        with ``with_ids``: ``({"audio", "id"}, label)``;
        with ``variable_length``: ``({"audio" [B, T], "length" [B], "transcript" [B]}, label)``
        (plus ``"id"`` with ``with_ids``). Labels are the manifest's ``label_index``
        (-1 for speech corpora).
    """
    import tensorflow as tf

    if not isinstance(cache, PreparedCache):
        cache = open_cache(Path(cache))
    plan = _Plan.from_arguments(cache, ids, mode=mode, clip_seconds=clip_seconds, windows=windows,
                                window_seconds=window_seconds, batch_size=batch_size, balance=balance,
                                balance_target=balance_target, max_repeats=max_repeats, seed=seed,
                                variable_length=variable_length, bucket_boundaries=bucket_boundaries,
                                shuffle_buffer=shuffle_buffer, with_ids=with_ids,
                                drop_remainder=drop_remainder)
    batches = plan.batches()
    if not plan.bucket_samples:
        examples = plan.examples_per_epoch()
        count = examples // batch_size if drop_remainder else math.ceil(examples / batch_size)
        batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    return batches.prefetch(tf.data.AUTOTUNE)


class _Plan:
    """The checked arguments of :func:`make_dataset` and what follows from the manifest."""

    @classmethod
    def from_arguments(cls, cache, ids, *, mode, clip_seconds, windows, window_seconds, batch_size, balance,
                       balance_target, max_repeats, seed, variable_length, bucket_boundaries, shuffle_buffer,
                       with_ids, drop_remainder):
        if mode not in MODES:
            raise CoughclfError(f"unknown pipeline mode {mode!r}; use one of {MODES}")
        if batch_size < 1 or shuffle_buffer < 1:
            raise CoughclfError(f"batch_size and shuffle_buffer must be positive, got {batch_size} and "
                                f"{shuffle_buffer}")
        if balance is not None and mode != "train":
            raise CoughclfError("class balancing resamples training data; use balance=None in eval mode")
        if variable_length and (clip_seconds or windows):
            raise CoughclfError("variable_length keeps clips whole; leave clip_seconds and windows unset")
        if bucket_boundaries and not variable_length:
            raise CoughclfError("bucket_boundaries applies to variable_length batches only")
        if (windows is None) != (window_seconds is None) or (windows is not None and windows < 1):
            raise CoughclfError("windowing needs both windows (a count >= 1) and window_seconds")
        if not cache.shard_paths:
            raise CoughclfError(f"{cache.root / 'shards'} holds no shards; prepare the cache again")

        rows = {row["id"]: row for row in cache.manifest}
        selected = list(rows) if ids is None else list(dict.fromkeys(ids))
        unknown = [clip_id for clip_id in selected if clip_id not in rows]
        if unknown:
            raise CoughclfError(f"{len(unknown)} requested clip ids are not in {cache.root / 'manifest.csv'} "
                                f"(first: {unknown[0]!r}); make the split from this cache's manifest")
        if not selected:
            raise CoughclfError(f"no clips selected from {cache.root}; the split is empty")

        plan = cls()
        plan.shards = cache.shard_paths
        plan.training = mode == "train"
        plan.seed = seed
        plan.deterministic = seed is not None or not plan.training
        plan.ids = selected
        plan.labels = np.array([int(rows[clip_id]["label_index"]) for clip_id in selected], dtype=np.int32)
        plan.class_counts = epoch_class_counts(plan.labels, balance, balance_target, max_repeats)
        plan.label_table = _table(selected, plan.labels, _NOT_SELECTED)
        plan.position_table = _table(selected, np.arange(len(selected), dtype=np.int32), -1)
        plan.balance = balance
        plan.variable_length = variable_length
        plan.with_ids = with_ids
        plan.batch_size = batch_size
        plan.drop_remainder = drop_remainder
        plan.shuffle_buffer = shuffle_buffer
        rate = cache.sample_rate
        if clip_seconds is not None:
            plan.clip_samples = int(round(clip_seconds * rate))
        elif windows or variable_length:
            plan.clip_samples = None
        else:
            plan.clip_samples = max(int(rows[clip_id]["num_samples"]) for clip_id in selected)
        plan.windows = windows
        plan.window_samples = int(round(window_seconds * rate)) if windows else None
        plan.bucket_samples = [int(round(b * rate)) for b in bucket_boundaries or ()]
        return plan

    def examples_per_epoch(self):
        clips = sum(self.class_counts.values()) if self.training else len(self.ids)
        return clips * (self.windows or 1)

    def batches(self):
        """One epoch of batches; iterating the dataset again gives the next epoch.

        Clips travel as serialised records through tf.data's own stages, the only
        per-clip function being the id check; parsing, cropping and decoding run
        vectorised on whole batches.
        """
        import tensorflow as tf

        records = self.selected_records()
        if self.windows:
            # Windows, not clips, are the examples: cut in chunks, then shuffled and batched one by one.
            examples = self.cut(records.batch(_CHUNK)).unbatch()
            return self.shuffled(examples).batch(self.batch_size, drop_remainder=self.drop_remainder)
        records = self.shuffled(records)
        if self.bucket_samples:
            return self.cut(records.bucket_by_sequence_length(
                lambda record: tf.cast(self.header(record)["num_samples"], tf.int32), self.bucket_samples,
                [self.batch_size] * (len(self.bucket_samples) + 1), drop_remainder=self.drop_remainder))
        return self.cut(records.batch(self.batch_size, drop_remainder=self.drop_remainder))

    def cut(self, record_batches):
        """:meth:`examples` of every batch of records, each with its own random key."""
        import tensorflow as tf

        keys = self.random_keys(stream=1)
        return tf.data.Dataset.zip(record_batches, keys).map(
            lambda batch, key: self.examples(batch, tf.stack([key, 0])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=self.deterministic)

    def shuffled(self, dataset):
        if not self.training:
            return dataset
        return dataset.shuffle(self.shuffle_buffer, seed=_derived_seed(self.seed, 2), reshuffle_each_iteration=True)

    def random_keys(self, stream):
        """Random int64 keys, a different sequence for each iteration (epoch), the same for the same seed."""
        import tensorflow as tf

        return tf.data.Dataset.random(seed=_derived_seed(self.seed, stream), rerandomize_each_iteration=True)

    def selected_records(self):
        """The serialised record of each use of a selected clip this epoch.

        Shards are read in parallel (in a shuffled order when training); records
        whose id is not selected are dropped and, when balancing, each selected one is
        repeated as often as this epoch's resampling says.
        """
        import tensorflow as tf

        if not self.balance:
            return self.records(_derived_seed(self.seed, 3)).filter(lambda record: self.position(record) >= 0)

        def resampled(key):
            uses = _epoch_repeats(self, key)

            def repeated(record):
                position = self.position(record)
                times = tf.where(position >= 0, tf.gather(uses, tf.maximum(position, 0)), 0)
                return tf.data.Dataset.from_tensors(record).repeat(tf.cast(times, tf.int64))

            return self.records(key).flat_map(repeated)

        # The resampling is drawn once per epoch: the epoch's records are built from its key.
        return self.random_keys(stream=4).take(1).flat_map(resampled)

    def records(self, shard_seed):
        import tensorflow as tf

        shards = tf.data.Dataset.from_tensor_slices(self.shards)
        if self.training:
            shards = shards.shuffle(len(self.shards), seed=shard_seed, reshuffle_each_iteration=True)
        return shards.interleave(tf.data.TFRecordDataset,
                                 cycle_length=min(len(self.shards), _MAX_INTERLEAVED_SHARDS),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=self.deterministic)

    @staticmethod
    def header(record):
        """A record's id and length, parsed without copying its audio."""
        import tensorflow as tf

        return tf.io.parse_single_example(record, {"id": tf.io.FixedLenFeature([], tf.string),
                                                   "num_samples": tf.io.FixedLenFeature([], tf.int64)})

    def position(self, record):
        """Index of the record's clip in the selection, -1 when not selected."""
        return self.position_table.lookup(self.header(record)["id"])

    def examples(self, serialized, seed):
        """A batch of serialised records -> ``(inputs, label)``: audio cut, padded or windowed, decoded."""
        import tensorflow as tf

        clips = _parse_records(serialized)
        labels = self.label_table.lookup(clips["id"])
        ids, lengths = clips["id"], clips["num_samples"]
        if self.variable_length:
            audio = _decoded(clips["pcm"], tf.reduce_max(lengths))
            inputs = {"audio": audio, "length": tf.cast(lengths, tf.int32), "transcript": clips["transcript"]}
            return ({**inputs, "id": ids} if self.with_ids else inputs), labels
        if self.clip_samples:
            slack = tf.abs(lengths - self.clip_samples)
            if self.training:
                draw = tf.random.stateless_uniform(tf.shape(slack), seed=seed, dtype=tf.float64)
                offsets = tf.cast(tf.floor(draw * tf.cast(slack + 1, tf.float64)), tf.int64)
            else:
                offsets = slack // 2
            audio = _fitted(clips["pcm"], lengths, self.clip_samples, offsets)
            lengths = tf.fill(tf.shape(lengths), tf.cast(self.clip_samples, tf.int64))
        else:
            audio = _decoded(clips["pcm"], tf.maximum(tf.reduce_max(lengths), self.window_samples))
        if self.windows:
            audio = _windows(audio, lengths, self.windows, self.window_samples)
            labels, ids = tf.repeat(labels, self.windows), tf.repeat(ids, self.windows)
        return ({"audio": audio, "id": ids} if self.with_ids else audio), labels


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
    class_of_clip = np.searchsorted(classes, plan.labels)
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


def _fitted(pcm, lengths, samples, offsets):
    """Each clip cut to ``samples`` from ``offsets`` when longer, or zero-padded with ``offsets`` zeros
    in front when shorter: ``[n, samples]`` float32, cut as bytes before decoding so only kept samples decode."""
    import tensorflow as tf

    longer = lengths >= samples
    zero = tf.zeros_like(offsets)
    start, before = tf.where(longer, offsets, zero), tf.where(longer, zero, offsets)
    # Decoding truncates and pads at the end by itself: bytes are cut only for a later start.
    piece = tf.cond(tf.reduce_any(start > 0),
                    lambda: tf.strings.substr(pcm, 2 * start, tf.fill(tf.shape(start), tf.cast(2 * samples, tf.int64))),
                    lambda: pcm)

    def with_leading_silence():
        silence = tf.fill(tf.shape(before), tf.constant(bytes(2 * samples)))
        return tf.strings.join([tf.strings.substr(silence, zero, 2 * before), piece])

    piece = tf.cond(tf.reduce_any(before > 0), with_leading_silence, lambda: piece)
    return _decoded(piece, samples)


def _decoded(pcm, samples):
    """int16 little-endian bytes -> ``[n, samples]`` float32 in [-1, 1), zero-padded at the end."""
    import tensorflow as tf

    fixed_bytes = tf.cast(2 * samples, tf.int32)
    return tf.cast(tf.io.decode_raw(pcm, tf.int16, fixed_length=fixed_bytes), tf.float32) * (1.0 / 32768.0)


def _windows(audio, lengths, count, samples):
    """``count`` windows of ``samples`` evenly spaced from each clip's start to its end: ``[n * count, samples]``."""
    import tensorflow as tf

    last_start = tf.cast(tf.maximum(lengths - samples, 0), tf.float64)
    fraction = tf.linspace(tf.constant(0.0, tf.float64), 1.0, count) if count > 1 else tf.zeros([1], tf.float64)
    starts = tf.cast(tf.round(last_start[:, None] * fraction[None, :]), tf.int32)
    windows = tf.gather(audio, starts[:, :, None] + tf.range(samples)[None, None, :], batch_dims=1)
    return tf.reshape(windows, [-1, samples])


def _derived_seed(seed, stream):
    """A distinct seed per random stream of the pipeline (``None`` stays unseeded)."""
    return None if seed is None else seed * 1_000_003 + stream
