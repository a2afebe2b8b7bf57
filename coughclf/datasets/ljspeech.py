"""LJSpeech-1.1: ``wavs/{id}.wav`` and ``metadata.csv`` (``id|text|normalized text``, no header).

Every row is listed, its wav present or not: ``prepare`` reports the missing ones in ``skipped.csv``
(a partial copy of the corpus says how partial it is).
"""

import csv

from coughclf.datasets.base import Archive, Clip, register_dataset
from coughclf.datasets.layout import find_root, loader, require_clips
from coughclf.errors import CoughclfError

LAYOUT = "metadata.csv (id|text|normalized text, no header) and wavs/{id}.wav"


@register_dataset(
    name="ljspeech",
    task="ctc",
    description="LJSpeech-1.1: 13,100 clips of one speaker reading non-fiction books, 22.05 kHz. "
                "Transcript = normalized text; group = the source book (id prefix such as LJ001).",
    citation="K. Ito and L. Johnson, The LJ Speech Dataset, https://keithito.com/LJ-Speech-Dataset/, 2017.",
    licence="Public domain",
    homepage="https://keithito.com/LJ-Speech-Dataset/",
    archives=(Archive(url="https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
                      # torchaudio.datasets.ljspeech's published checksum.
                      sha256="be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"),),
)
@loader
def list_ljspeech(data_dir):
    root = find_root(data_dir, "metadata.csv", LAYOUT, dataset="ljspeech")
    wavs = root / "wavs"
    clips = []
    # Texts contain double quotes that are not CSV quoting, hence QUOTE_NONE.
    with open(root / "metadata.csv", newline="", encoding="utf-8") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
            if not row:
                continue
            if len(row) < 2:
                raise CoughclfError(f"{root / 'metadata.csv'} line {line_number} is not 'id|text|normalized text'")
            clip_id, text = row[0], row[1]
            normalized = row[2] if len(row) > 2 and row[2] else text
            clips.append(Clip(id=clip_id, path=wavs / f"{clip_id}.wav", group=clip_id.split("-")[0],
                              transcript=normalized, metadata={"text": text}))
    return require_clips(clips, root, LAYOUT, dataset="ljspeech")
