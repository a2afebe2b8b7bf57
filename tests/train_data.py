"""Tiny prepared caches and configs for the training, CV and multi-worker tests.

Two classes a small CNN tells apart within a few epochs (a low and a high tone in
noise), spread over speakers (groups), predefined folds and two recording sources.
"""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from conftest import tone
from coughclf.cache import FORMAT_VERSION, MANIFEST_COLUMNS, SHARD_PATTERN, encode_example

RATE = 16000
CLASSES = ("low", "high")
FRONTEND = {"n_fft": 512, "hop_length": 128}  # 126 frames for 1 s: enough for cough_small_cnn's four blocks


def write_tone_cache(root, *, clips_per_class=16, speakers=8, folds=4, seconds=1.0, shards=2):
    """A prepared cache of tones: class ``low`` ~300 Hz, ``high`` ~2 kHz; metadata column ``meta_source``."""
    import tensorflow as tf

    root = Path(root)
    (root / "shards").mkdir(parents=True)
    writers = [tf.io.TFRecordWriter(str(root / SHARD_PATTERN.format(index=i))) for i in range(shards)]
    rows = []
    for label_index, name in enumerate(CLASSES):
        for take in range(clips_per_class):
            clip_id = f"{name}-{take:03d}"
            pcm = tone_pcm(label_index, take, seconds)
            shard = len(rows) % shards
            writers[shard].write(encode_example(clip_id, pcm, label_index))
            rows.append({"id": clip_id, "path": f"{clip_id}.wav", "label": name, "label_index": label_index,
                         "group": f"speaker{take % speakers}", "fold": take % folds + 1, "split": "",
                         "duration": seconds, "num_samples": pcm.size, "transcript": "",
                         "sha1": hashlib.sha1(pcm.tobytes()).hexdigest(),
                         "shard": shard, "meta_source": "phone" if take % 2 else "app"})
    for writer in writers:
        writer.close()
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        table = csv.DictWriter(handle, [*MANIFEST_COLUMNS, "meta_source"])
        table.writeheader()
        table.writerows(rows)
    (root / "cache.json").write_text(json.dumps({"format": FORMAT_VERSION, "dataset": "folder",
                                                 "classes": list(CLASSES), "sample_rate": RATE}))
    return root


def tone_pcm(label_index, take, seconds=1.0):
    """The 16-bit samples of the cache's clip ``take`` of class ``label_index`` (:func:`write_tone_cache`)."""
    frequency = (300.0 if label_index == 0 else 2000.0) * (1 + 0.05 * (take % 5))
    signal = tone(seconds, RATE, frequency, amplitude=0.3, seed=label_index * 1000 + take, noise=0.05)
    return np.round(signal * 32767).astype(np.int16)


RANDOM_SPLIT = 'method = "random"\nval = 0.25\ntest = 0.25'


def write_config(path, cache, *, epochs=3, split=RANDOM_SPLIT, extra=""):
    """A config training cough_small_cnn on ``cache`` for a few epochs; ``split``: the [split] body;
    ``extra``: TOML lines appended to [metrics]."""
    path = Path(path)
    path.write_text(f'''
name = "tones"

[data]
dataset = "folder"
cache = "{cache}"
clip_seconds = 1.0

[split]
{split}

[model]
name = "cough_small_cnn"
dropout = 0.0

[frontend]
n_fft = {FRONTEND["n_fft"]}
hop_length = {FRONTEND["hop_length"]}

[optimizer]
lr = 3e-3

[train]
epochs = {epochs}
batch_size = 8
patience = 0
monitor = "val_accuracy"

[metrics]
bootstrap = 50
examples = 2
{extra}
''')
    return path
