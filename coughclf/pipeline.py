"""The tf.data input pipeline: batches of waveforms from a prepared cache.

The pipeline yields audio, not features: the front end (log-mel, MFCC, ...) and
the augmentation are Keras layers at the front of the model, so they run on the
accelerator and are saved with it.

The selected clips are read from the cache in one of two ways (``cache_in_memory``):

* **in memory** (the default whenever the selected audio takes at most
  ``AUTO_IN_MEMORY_BYTES``): the shards are read once, when the dataset is made,
  and the clips' 16-bit audio stays in memory. Each epoch is then planned as a
  whole, vectorised: which clips it uses (``balance`` resamples each class to a
  per-class count, see :func:`epoch_class_counts`), their crop offsets, and, when
  training, one random permutation of all of them (a full shuffle, not in blocks).
  tf.data then only slices each example out of memory and batches. Evaluation
  yields the clips in the order of ``ids``.
* **streamed**: every epoch reads the shards in parallel (interleaved, in a
  shuffled order when training), keeps the records of selected clips (repeated as
  the balancing says), shuffles them in blocks of ``shuffle_buffer`` when training
  and parses, cuts and decodes them a batch at a time.

Either way each clip is cut to ``clip_seconds`` (a random crop when training, the
centre when evaluating; shorter clips are zero-padded, at a random offset when
training, centred otherwise) and decoded from 16-bit PCM; labels come from the
manifest by clip id, so relabelling the manifest is enough. With ``windows``,
clips are cut into evenly spaced windows (each an example with its clip's label
and id) which are shuffled one by one; with ``variable_length`` each batch is
padded to its longest clip. Batches are prefetched.

Everything random derives from ``seed``, through the keys of
:func:`coughclf.epoch_keys.random_keys`: two datasets made with the same seed and
the same ``cache_in_memory`` choice yield the same batches in the same order, epoch
after epoch (for the same global TensorFlow seed, which
``keras.utils.set_random_seed`` sets), and each epoch differs from the previous one
(new crops, order and resampled subsets). The two ways draw different batches.
Made inside :func:`coughclf.epoch_keys.keyed_by_epoch`, as training makes them, a
dataset draws each epoch's batches from the epoch's number instead of from how many
times this process has iterated it: a resumed run gets the batches of the run it resumes.
"""

import dataclasses
import math
import os
import warnings
from pathlib import Path

import numpy as np

from coughclf.cache import PreparedCache, open_cache
from coughclf.clip_sources import ClipsInMemory, ShardRecords
from coughclf.epoch_keys import random_keys
from coughclf.errors import CoughclfError

MODES = ("train", "eval")
BALANCE_METHODS = ("oversample", "undersample")
CLASS_WEIGHT_FORMULAS = ("report", "inverse")
CACHE_IN_MEMORY_CHOICES = (True, False, "auto")
AUDIO_DTYPES = ("float32", "int16")
# With cache_in_memory="auto": the most selected 16-bit audio held in memory (about 9 hours at 16 kHz).
# A fixed size, not a share of the free memory, so that the choice (and so the batches) is the
# same on every machine.
AUTO_IN_MEMORY_BYTES = 1 << 30


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


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """How :func:`make_dataset` cuts, balances, orders and batches the clips: one checked value.

    Made once by whoever decides them (``coughclf.inputs.dataset_options`` from a run's
    config) and passed down whole; ``dataclasses.replace`` derives a variant.

    Attributes:
        mode: ``"train"`` (seeded shuffle, random crops, balancing) or ``"eval"``
            (centre crops, every selected clip once, in a fixed order).
        clip_seconds: fixed duration each clip is cut or zero-padded to; default the
            longest selected clip (with ``windows``: the whole clip, uncut).
        windows, window_seconds: cut each (cropped) clip into ``windows`` windows of
            ``window_seconds``, evenly spaced from its start to its end (overlapping or
            with gaps as needed; a clip shorter than a window is zero-padded); each
            window is one example with the clip's label and id.
        random_windows: in training, each window starts anywhere in the clip (uniformly,
            drawn anew every epoch) instead of at its evenly spaced place: more distinct
            crops of a short clip, while evaluation keeps the evenly spaced windows.
        batch_size, drop_remainder: batching.
        balance, balance_target, max_repeats: per-epoch class resampling when
            training, see :func:`epoch_class_counts`.
        balance_within: a manifest column (e.g. ``"meta_source"``): resample the cells
            (value of the column, class) instead of the classes, so that every class is
            equally frequent within each value (and every value equally frequent): the
            column then tells nothing about the label in training. The remedy for a
            label confounded with a recording channel.
        random_crops: in training, cut a longer clip at a random offset and place a shorter
            one at a random offset in its zero-padded row (``False``: centred, as in eval
            mode; for a model whose position-dependent layers should see every word where
            the test clips put it).
        seed: seeds every random choice; ``None`` for unseeded and non-deterministic
            (slightly faster reads).
        variable_length: no cropping; each batch is zero-padded to its longest clip
            and carries ``length`` (samples) and ``transcript`` (speech recognition).
        bucket_boundaries: with ``variable_length``, clip durations in seconds that
            split clips into buckets batched separately (less padding).
        with_ids: also yield each clip's id.
        shuffle_buffer: when streaming, clips shuffled together in training (a block
            of consecutive records permuted at once), as whole 16-bit records (about
            ``shuffle_buffer * duration * 32`` KB a block, two or three blocks held at a
            time; windows: cut windows). In memory every epoch is shuffled whole.
        cache_in_memory: ``True`` reads the selected clips' 16-bit audio into memory
            once, here, so that no epoch reads or parses a record again; ``False``
            streams the shards every epoch; ``"auto"`` holds them in memory when they
            take at most ``AUTO_IN_MEMORY_BYTES`` (and at most half the memory
            available; else it warns and streams).
        audio_dtype: ``"float32"`` (samples in [-1, 1)) or ``"int16"`` (the cache's
            16-bit samples as they are: half the bytes to move; put
            :class:`coughclf.layers.PCMToFloat` at the front of the model).
    """

    mode: str = "train"
    clip_seconds: float | None = None
    windows: int | None = None
    window_seconds: float | None = None
    batch_size: int = 32
    balance: str | None = None
    balance_target: int | None = None
    max_repeats: float | None = None
    balance_within: str | None = None
    seed: int | None = 0
    variable_length: bool = False
    with_ids: bool = False
    shuffle_buffer: int = 1024
    drop_remainder: bool = False
    bucket_boundaries: tuple | list | None = None
    cache_in_memory: bool | str = "auto"
    audio_dtype: str = "float32"
    random_crops: bool = True
    random_windows: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise CoughclfError(f"unknown pipeline mode {self.mode!r}; use one of {MODES}")
        if self.batch_size < 1 or self.shuffle_buffer < 1:
            raise CoughclfError(f"batch_size and shuffle_buffer must be positive, got {self.batch_size} and "
                                f"{self.shuffle_buffer}")
        if self.balance is not None and self.mode != "train":
            raise CoughclfError("class balancing resamples training data; use balance=None in eval mode")
        if self.variable_length and (self.clip_seconds or self.windows):
            raise CoughclfError("variable_length keeps clips whole; leave clip_seconds and windows unset")
        if self.bucket_boundaries and not self.variable_length:
            raise CoughclfError("bucket_boundaries applies to variable_length batches only")
        if (self.windows is None) != (self.window_seconds is None) or (self.windows is not None and self.windows < 1):
            raise CoughclfError("windowing needs both windows (a count >= 1) and window_seconds")
        if self.random_windows and not self.windows:
            raise CoughclfError("random_windows places windows; set windows and window_seconds too")
        if not (isinstance(self.cache_in_memory, bool) or self.cache_in_memory == "auto"):
            raise CoughclfError(f"cache_in_memory must be one of {CACHE_IN_MEMORY_CHOICES}, "
                                f"got {self.cache_in_memory!r}")
        if self.audio_dtype not in AUDIO_DTYPES:
            raise CoughclfError(f"audio_dtype must be one of {AUDIO_DTYPES}, got {self.audio_dtype!r}")


def make_dataset(cache, ids=None, options=None, **fields):
    """A ``tf.data.Dataset`` of batches from a prepared cache.

    Args:
        cache: a :class:`coughclf.cache.PreparedCache` (or the path of one).
        ids: the clip ids to use (a split); default every clip in the manifest.
        options: a :class:`DatasetOptions` (default: its defaults).
        fields: :class:`DatasetOptions` fields set over ``options``
            (``make_dataset(cache, ids, mode="eval", batch_size=8)``).

    Returns:
        ``(audio [B, samples] float32 (or int16), label [B] int32)`` batches;
        with ``with_ids``: ``({"audio", "id"}, label)``;
        with ``variable_length``: ``({"audio" [B, T], "length" [B], "transcript" [B]}, label)``
        (plus ``"id"`` with ``with_ids``). Labels are the manifest's ``label_index``
        (-1 for speech corpora).
    """
    import tensorflow as tf

    options = dataclasses.replace(options or DatasetOptions(), **fields)
    if not isinstance(cache, PreparedCache):
        cache = open_cache(Path(cache))
    plan = _Plan.from_options(cache, ids, options)
    batches = plan.source.batches(plan)
    if not plan.bucket_samples:
        examples = plan.examples_per_epoch()
        batch_size = options.batch_size
        count = examples // batch_size if options.drop_remainder else math.ceil(examples / batch_size)
        batches = batches.apply(tf.data.experimental.assert_cardinality(count))
    return batches.prefetch(tf.data.AUTOTUNE)


class _Plan:
    """The :class:`DatasetOptions` of :func:`make_dataset`, what follows from the manifest, and the work
    both clip sources share: where each example's samples come from, and the yielded structure."""

    @classmethod
    def from_options(cls, cache, ids, options):
        """The plan of ``options`` (checked by :class:`DatasetOptions`) over ``cache``'s clips ``ids``."""
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
        plan.training = options.mode == "train"
        plan.seed = options.seed
        plan.deterministic = options.seed is not None or not plan.training
        plan.ids = selected
        plan.labels = np.array([int(rows[clip_id]["label_index"]) for clip_id in selected], dtype=np.int32)
        plan.balance_keys = _balance_keys(plan.labels, [rows[clip_id] for clip_id in selected],
                                          options.balance_within, options.balance, cache.root)
        plan.class_counts = epoch_class_counts(plan.balance_keys, options.balance, options.balance_target,
                                               options.max_repeats)
        plan.balance = options.balance
        plan.variable_length = options.variable_length
        plan.with_ids = options.with_ids
        plan.batch_size = options.batch_size
        plan.drop_remainder = options.drop_remainder
        plan.shuffle_buffer = options.shuffle_buffer
        plan.audio_dtype = options.audio_dtype
        plan.random_crops = plan.training and options.random_crops
        plan.random_windows = plan.training and bool(options.windows) and options.random_windows
        rate = cache.sample_rate
        if options.clip_seconds is not None:
            plan.clip_samples = int(round(options.clip_seconds * rate))
        elif options.windows or options.variable_length:
            plan.clip_samples = None
        else:
            plan.clip_samples = max(int(rows[clip_id]["num_samples"]) for clip_id in selected)
        plan.windows = options.windows
        plan.window_samples = int(round(options.window_seconds * rate)) if options.windows else None
        plan.bucket_samples = [int(round(b * rate)) for b in options.bucket_boundaries or ()]
        audio_bytes = 2 * sum(int(rows[clip_id]["num_samples"]) for clip_id in selected)
        source = ClipsInMemory if _holds_in_memory(options.cache_in_memory, audio_bytes, cache.root) else ShardRecords
        plan.source = source(cache.shard_paths, selected, plan.labels)
        return plan

    def examples_per_epoch(self):
        clips = sum(self.class_counts.values()) if self.training else len(self.ids)
        return clips * (self.windows or 1)

    def random_keys(self, stream):
        """Random int64 keys, a different sequence for each iteration (epoch), the same for the same seed
        (:func:`coughclf.epoch_keys.random_keys`); each ``stream`` of the pipeline has its own."""
        return random_keys(None if self.seed is None else self.seed * 1_000_003 + stream)

    def pieces(self, lengths, draws, window_index, window_draws=None):
        """Where the samples of each output row come from, for clips of ``lengths`` ([n] int64).

        Row ``[lo, hi)`` holds the clip's samples ``[lo + shift, hi + shift)``; the rest of
        the row is silence. ``draws`` (uniform in [0, 1), one per clip) place the random crops
        when training; ``window_draws`` (as ``window_index``, see :meth:`window_draws`) the
        random windows. Returns ``(shift, lo, hi, width)``, the first three ``[n, k]``: one row
        per clip (k = 1), or, with windows, one per entry of ``window_index`` ([n, k]).
        """
        import tensorflow as tf

        if self.clip_samples:
            width = tf.constant(self.clip_samples, tf.int64)
            slack = tf.abs(lengths - width)
            if self.random_crops:
                offsets = tf.cast(tf.floor(draws * tf.cast(slack + 1, tf.float64)), tf.int64)
            else:
                offsets = slack // 2
            # A longer clip is cut ``offset`` samples in; a shorter one starts ``offset`` samples late.
            shift = tf.where(lengths >= width, offsets, -offsets)
            lo, hi, kept = tf.maximum(-shift, 0), tf.minimum(lengths - shift, width), tf.fill(tf.shape(lengths), width)
        else:
            width = tf.reduce_max(lengths)
            shift, lo, hi, kept = tf.zeros_like(lengths), tf.zeros_like(lengths), lengths, lengths
        shift, lo, hi = shift[:, None], lo[:, None], hi[:, None]
        if window_index is None:
            return shift, lo, hi, width
        window = tf.constant(self.window_samples, tf.int64)
        if window_draws is None:
            starts = _window_starts(kept, window_index, self.windows, window)
        else:
            starts = tf.cast(tf.floor(window_draws * tf.cast(tf.maximum(kept - window, 0) + 1, tf.float64)[:, None]),
                             tf.int64)
        lo = tf.clip_by_value(lo - starts, 0, window)
        return shift + starts, lo, tf.clip_by_value(hi - starts, lo, window), window

    def window_draws(self, window_index, seed):
        """Uniform [0, 1) draws placing random windows (shaped as ``window_index``), or ``None``
        when the windows keep their evenly spaced places. ``seed``: a stateless seed ([2])."""
        import tensorflow as tf

        if not self.random_windows:
            return None
        # The seed moved by a constant: a stream apart from the crop draws made from the same seed.
        return tf.random.stateless_uniform(tf.shape(window_index), seed=seed + tf.constant([0, 7919], seed.dtype),
                                           dtype=tf.float64)

    def outputs(self, clips, pcm, rows_per_clip):
        """``(inputs, label)`` as :func:`make_dataset` yields them, from a batch of clips and their int16 rows."""
        import tensorflow as tf

        ids, labels = clips["id"], clips["label"]
        audio = pcm if self.audio_dtype == "int16" else tf.cast(pcm, tf.float32) * (1.0 / 32768.0)
        if self.variable_length:
            inputs = {"audio": audio, "length": tf.cast(clips["num_samples"], tf.int32),
                      "transcript": clips["transcript"]}
            return ({**inputs, "id": ids} if self.with_ids else inputs), labels
        if rows_per_clip > 1:
            ids, labels = tf.repeat(ids, rows_per_clip), tf.repeat(labels, rows_per_clip)
        return ({"audio": audio, "id": ids} if self.with_ids else audio), labels


def _holds_in_memory(choice, audio_bytes, root):
    """Whether ``cache_in_memory=choice`` means reading the clips into memory."""
    if choice != "auto":
        return choice
    if audio_bytes > AUTO_IN_MEMORY_BYTES:
        return False
    available = _available_memory_bytes()
    # Reading the clips in holds them twice for a moment.
    if available and 2 * audio_bytes > available:
        warnings.warn(f"the selected clips of {root} ({audio_bytes / 2 ** 20:.0f} MiB) would not fit in the "
                      f"memory available, so they are streamed: the batches differ from a run holding them "
                      f"in memory (pass cache_in_memory=False to stream everywhere)", stacklevel=4)
        return False
    return True


def _available_memory_bytes():
    """Memory the system can still give (Linux's MemAvailable, else free pages); 0 when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _balance_keys(labels, rows, column, balance, cache_root):
    """What balancing equalises, per clip: its class, or with ``column`` its cell (column value, class)."""
    if column is None:
        return labels
    if balance is None:
        raise CoughclfError(f"balance_within={column!r} needs a balance method ('oversample' or 'undersample')")
    if column not in rows[0]:
        raise CoughclfError(f"balance_within: {cache_root / 'manifest.csv'} has no column {column!r}; its "
                            f"columns: {', '.join(rows[0])}")
    index_of = {value: index for index, value in enumerate(sorted({row[column] for row in rows}))}
    value_index = np.array([index_of[row[column]] for row in rows])
    return (labels.astype(np.int64) * len(index_of) + value_index).astype(np.int32)


def _window_starts(lengths, window_index, count, samples):
    """Starts of windows ``window_index`` ([n, k]) of ``count`` windows of ``samples`` evenly spaced
    from each clip's start to its end (``lengths``: [n])."""
    import tensorflow as tf

    last_start = tf.cast(tf.maximum(lengths - samples, 0), tf.float64)
    fraction = tf.linspace(tf.constant(0.0, tf.float64), 1.0, count) if count > 1 else tf.zeros([1], tf.float64)
    return tf.cast(tf.round(last_start[:, None] * tf.gather(fraction, window_index)), tf.int64)
