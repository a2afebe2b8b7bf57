"""Unlabelled audio for distillation: clips only the teacher labels, between the labelled batches.

``distill.unlabelled`` lists prepared caches or folders of audio files (any layout; a folder is
prepared once into ``prepared/unlabelled-…``, like a dataset). Their labels, if any, are never read:
each becomes a training example with an all-zero target, which takes the soft loss only
(:func:`coughclf.distillation.model.distillation_loss`) and counts in no training metric.

They are cut like the training clips (crops, windows) and come as whole batches of their own,
``distill.unlabelled_ratio`` of them per labelled batch (0.5: one after every second labelled batch),
so that an epoch still ends with the labelled data and the labelled batches keep their balancing and
mixing. A clip whose audio is identical (same SHA-1 of its samples) to one of the student's validation
or test clips is left out: nothing of the held-out parts reaches training, not even unlabelled.
"""

import dataclasses
import hashlib
import json
import math
from pathlib import Path

from coughclf.console import report
from coughclf.errors import CoughclfError


def unlabelled_caches(config):
    """The prepared caches of ``distill.unlabelled`` (folders of audio prepared on first use)."""
    from coughclf.cache import open_cache

    caches = []
    for entry in config["distill"]["unlabelled"]:
        path = Path(entry)
        cache = open_cache(path) if (path / "manifest.csv").exists() else _prepared_folder(path, config)
        if cache.sample_rate != config["data"]["sample_rate"]:
            raise CoughclfError(f"{config.source}: distill.unlabelled {entry} holds {cache.sample_rate} Hz audio but "
                                f"data.sample_rate = {config['data']['sample_rate']}; prepare it at that rate")
        caches.append(cache)
    return caches


def _prepared_folder(folder, config):
    from coughclf.cache import open_cache
    from coughclf.datasets.base import Clip
    from coughclf.datasets.layout import audio_files
    from coughclf.inputs import PREPARED_ROOT
    from coughclf.prepare import prepare_clips

    if not folder.is_dir():
        raise CoughclfError(f"{config.source}: distill.unlabelled names {folder}, which is neither a prepared cache "
                            "nor a folder of audio")
    files = audio_files(folder)
    if not files:
        raise CoughclfError(f"{config.source}: distill.unlabelled folder {folder} holds no audio files "
                            "(.wav, .flac, .ogg, .mp3, .webm)")
    clips = [Clip(id=path.relative_to(folder).as_posix(), path=path, group=path.stem) for path in files]
    rate = config["data"]["sample_rate"]
    key = json.dumps([str(folder.resolve()), rate, [clip.id for clip in clips]])
    out = PREPARED_ROOT / f"unlabelled-{folder.name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    if not (out / "manifest.csv").exists():
        report(f"preparing the unlabelled audio of {folder} into {out} (once)")
        prepare_clips(clips, out, dataset_name="unlabelled", data_dir=folder, sample_rate=rate)
    return open_cache(out)


def held_out_audio(cache, split):
    """The SHA-1s of the audio of the student's validation and test clips."""
    held_out = set(split["validation"]) | set(split["test"])
    return {row["sha1"] for row in cache.manifest if row["id"] in held_out}


def unlabelled_batches(config, caches, held_out, *, seconds, num_classes, weighted):
    """``(dataset, counts)``: endless training batches ``(audio, zeros[, ones])`` of the ``caches``' clips
    whose audio is not in ``held_out``, cut as the training clips are; ``counts`` says how many were
    used and left out."""
    import tensorflow as tf

    from coughclf.inputs import dataset_options
    from coughclf.pipeline import make_dataset

    options = dataclasses.replace(dataset_options(config, mode="train", seconds=seconds), balance=None,
                                  balance_target=None, max_repeats=None, balance_within=None, with_ids=False,
                                  seed=config["train"]["seed"] + 1)
    streams, sizes, excluded = [], [], 0
    for cache in caches:
        ids = [row["id"] for row in cache.manifest if row["sha1"] not in held_out]
        excluded += len(cache.manifest) - len(ids)
        if ids:
            streams.append(make_dataset(cache, ids, options).repeat())
            sizes.append(len(ids))
    if not streams:
        raise CoughclfError(f"{config.source}: every clip of distill.unlabelled is a copy of a validation or test "
                            "clip of the student; give other unlabelled audio")
    batches = (streams[0] if len(streams) == 1 else
               tf.data.Dataset.sample_from_datasets(streams, [size / sum(sizes) for size in sizes],
                                                    seed=config["train"]["seed"]))

    def unlabelled(audio, _label):
        zeros = tf.zeros([tf.shape(audio)[0], num_classes], tf.float32)
        return (audio, zeros, tf.ones([tf.shape(audio)[0]], tf.float32)) if weighted else (audio, zeros)

    return batches.map(unlabelled, num_parallel_calls=tf.data.AUTOTUNE), {"unlabelled_clips": sum(sizes),
                                                                           "unlabelled_held_out": excluded}


def interleave(labelled, unlabelled, ratio):
    """``labelled`` batches, each followed by the unlabelled batches that keep ``ratio`` unlabelled per labelled
    one (``floor((i + 1)·ratio) − floor(i·ratio)`` after batch ``i``); ends when ``labelled`` does."""
    import tensorflow as tf

    def after(index):
        count = tf.cast(tf.floor(tf.cast(index + 1, tf.float64) * ratio) - tf.floor(tf.cast(index, tf.float64) * ratio),
                        tf.int64)
        return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).concatenate(
            tf.data.Dataset.from_tensors(tf.constant(1, tf.int64)).repeat(count))

    choices = tf.data.Dataset.counter().flat_map(after)
    chosen = tf.data.Dataset.choose_from_datasets([labelled, unlabelled], choices, stop_on_empty_dataset=True)
    batches = int(labelled.cardinality())
    if batches >= 0:  # known: Keras then knows an epoch's length from the first one on (the sum telescopes)
        chosen = chosen.apply(tf.data.experimental.assert_cardinality(batches + math.floor(batches * ratio)))
    return chosen.prefetch(tf.data.AUTOTUNE)

