"""Spoken digit sequences composed from FSDD: a small, real-speech CTC corpus.

Each utterance strings 3–7 recordings of one FSDD speaker together with short random
silences between them, e.g. "three one four". The data folder is the FSDD folder
(read in place); the composed wav files are written once to ``audio_dir`` (default
``~/.cache/coughclf/digit_sequences/<options>``) and reused while the options match.
Everything follows from ``seed``.

Held-out splits (the ``split`` column, used by ``[split] method = "official"``):

* ``held_out="recordings"``: FSDD's own test takes (0–4) compose the test utterances,
  takes 5–9 the validation ones and takes 10–49 the training ones, so no recording of
  a test utterance is ever heard in training (the speakers are shared);
* ``held_out="speakers"``: one speaker (chosen by the seed) is test, another
  validation, the rest train.

Utterance counts follow the pools: 80 % train, 10 % validation, 10 % test for
recordings; in proportion to the speakers otherwise. ``group`` is the speaker (and,
for recordings, the pool), so group-aware random splits keep the pools apart too.
"""

import json
import os
from pathlib import Path

import numpy as np

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.fsdd import list_fsdd, official_split
from coughclf.datasets.layout import loader
from coughclf.errors import CoughclfError
from coughclf.files import atomic_path, write_json
from coughclf.text import DIGIT_WORDS

HELD_OUT = ("recordings", "speakers")
_SPLITS = ("train", "validation", "test")
_CORPUS_FILE = "corpus.json"


@register_dataset(
    name="digit_sequences",
    task="ctc",
    description="Utterances of 3-7 FSDD digits from one speaker with short random gaps, transcript like "
                "'three one four'; composed from the FSDD folder given as data folder, deterministic under "
                "the seed; split = recordings or speakers held out.",
    citation="Composed from Z. Jackson et al., Free Spoken Digit Dataset (FSDD), "
             "https://github.com/Jakobovski/free-spoken-digit-dataset, 2018.",
    licence="CC BY-SA 4.0 (FSDD)",
    homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
    options={
        "count": "utterances in all (default 2000)",
        "seed": "seed of every random choice (default 0)",
        "held_out": "'recordings' (FSDD test takes only in test) or 'speakers' (unseen speakers in test)",
        "min_digits": "fewest digits per utterance (default 3)",
        "max_digits": "most digits per utterance (default 7)",
        "min_gap": "shortest silence between and around digits, seconds (default 0.05)",
        "max_gap": "longest silence, seconds (default 0.25)",
        "audio_dir": "where the composed wav files go (default ~/.cache/coughclf/digit_sequences/...)",
    },
)
@loader
def list_digit_sequences(data_dir, *, count=2000, seed=0, held_out="recordings", min_digits=3, max_digits=7,
                         min_gap=0.05, max_gap=0.25, audio_dir=""):
    if held_out not in HELD_OUT:
        raise CoughclfError(f"digit_sequences option held_out={held_out!r}: choose 'recordings' or 'speakers'")
    if not 1 <= min_digits <= max_digits:
        raise CoughclfError(f"digit_sequences: need 1 <= min_digits ({min_digits}) <= max_digits ({max_digits})")
    if not 0 <= min_gap <= max_gap:
        raise CoughclfError(f"digit_sequences: need 0 <= min_gap ({min_gap}) <= max_gap ({max_gap})")
    settings = {"source": str(data_dir), "count": count, "seed": seed, "held_out": held_out,
                "min_digits": min_digits, "max_digits": max_digits, "min_gap": min_gap, "max_gap": max_gap}
    folder = Path(audio_dir).expanduser() if audio_dir else _default_audio_dir(settings)
    corpus = folder / _CORPUS_FILE
    if corpus.exists() and json.loads(corpus.read_text())["settings"] == settings:
        utterances = json.loads(corpus.read_text())["utterances"]
    else:
        utterances = compose_plan(list_fsdd(data_dir), settings)
        _write_audio(utterances, folder)
        write_json(corpus, {"settings": settings, "utterances": utterances})
    return [Clip(id=u["id"], path=folder / f"{u['id']}.wav", group=u["group"], split=u["split"],
                 transcript=" ".join(DIGIT_WORDS[int(d)] for d in u["digits"]),
                 metadata={"speaker": u["speaker"], "recordings": " ".join(u["recordings"])})
            for u in utterances]


def _default_audio_dir(settings):
    import hashlib

    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache_home / "coughclf" / "digit_sequences" / f"{settings['held_out']}-{digest}"


def _pools(recordings, held_out, rng):
    """``{split: [fsdd Clip]}``: which recordings each split's utterances may use."""
    if held_out == "recordings":
        def pool_of(clip):
            return official_split(int(clip.metadata["take"]))
        return {split: [c for c in recordings if pool_of(c) == split] for split in _SPLITS}
    speakers = sorted({clip.group for clip in recordings})
    if len(speakers) < 3:
        raise CoughclfError(f"digit_sequences held_out='speakers' needs at least 3 FSDD speakers, found "
                            f"{len(speakers)} ({', '.join(speakers)}); use held_out='recordings'")
    test_speaker, validation_speaker = rng.choice(speakers, size=2, replace=False)
    split_of = {test_speaker: "test", validation_speaker: "validation"}
    return {split: [c for c in recordings if split_of.get(c.group, "train") == split] for split in _SPLITS}


def compose_plan(recordings, settings):
    """The utterances (JSON-able dicts) for FSDD clips ``recordings`` under ``settings``; no audio is read."""
    rng = np.random.default_rng(settings["seed"])
    pools = _pools(sorted(recordings, key=lambda clip: clip.id), settings["held_out"], rng)
    sizes = {split: len(pool) for split, pool in pools.items()}
    total = sum(sizes.values())
    counts = {split: round(settings["count"] * size / total) for split, size in sizes.items()}
    utterances = []
    for split in _SPLITS:
        by_speaker = {}
        for clip in pools[split]:
            by_speaker.setdefault(clip.group, {}).setdefault(clip.label, []).append(clip)
        speakers = sorted(by_speaker)
        for _ in range(counts[split]):
            speaker = speakers[rng.integers(len(speakers))]
            digits = sorted(by_speaker[speaker])
            chosen = [digits[rng.integers(len(digits))]
                      for _ in range(rng.integers(settings["min_digits"], settings["max_digits"] + 1))]
            takes = [by_speaker[speaker][digit][rng.integers(len(by_speaker[speaker][digit]))] for digit in chosen]
            gaps = rng.uniform(settings["min_gap"], settings["max_gap"], size=len(takes) + 1)
            group = speaker if settings["held_out"] == "speakers" else f"{speaker}:{split}"
            utterances.append({"id": f"{split}-{len(utterances):05d}", "split": split, "speaker": speaker,
                               "group": group, "digits": "".join(chosen),
                               "recordings": [clip.id for clip in takes],
                               "paths": [str(clip.path) for clip in takes], "gaps": gaps.round(4).tolist()})
    return utterances


def compose_audio(paths, gaps):
    """``(signal, sample_rate)``: the recordings at ``paths`` with ``gaps`` seconds of silence around them.

    ``gaps`` has one more entry than ``paths`` (before, between, after). Recordings at
    another rate than the first are resampled to it.
    """
    import soundfile
    import soxr

    pieces, sample_rate = [], None
    for index, path in enumerate(paths):
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        sample_rate = sample_rate or rate
        if rate != sample_rate:
            audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
        pieces += [np.zeros(round(gaps[index] * sample_rate), np.float32), audio]
    pieces.append(np.zeros(round(gaps[-1] * sample_rate), np.float32))
    return np.concatenate(pieces), sample_rate


def _write_audio(utterances, folder):
    import soundfile
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    for utterance in tqdm(utterances, desc="composing digit sequences", unit="utt", leave=False):
        target = folder / f"{utterance['id']}.wav"
        signal, sample_rate = compose_audio(utterance["paths"], utterance["gaps"])
        with atomic_path(target, suffix=".wav") as temporary:  # soundfile picks the format from the suffix
            soundfile.write(str(temporary), signal, sample_rate, subtype="PCM_16")
