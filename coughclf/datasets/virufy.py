"""Virufy clinical data (github.com/virufy/virufy-data): ``clinical/labels.csv`` and segmented coughs.

The repository holds ``clinical/original/{neg,pos}/{neg|pos}-{MMDD}-{patient}-cough-{m|f}-{age}.mp3``
(one recording per patient), the cough segments cut from them in
``clinical/segmented/{neg,pos}/{recording}-{k}.mp3``, and ``clinical/labels.csv`` with one row per
recording (``cough_filename``, ``corona_test`` from PCR, age, gender, smoker, medical history,
reported symptoms). Forks add automatic segmentations beside ``segmented`` (``{recording}_{k}.wav``).
"""

import re

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import audio_files, find_root, loader, read_table, require_clips
from coughclf.errors import CoughclfError

LAYOUT = ("clinical/labels.csv (cough_filename, corona_test, age, gender, ...) and "
          "clinical/{audio}/{neg,pos}/{recording}[-{k}].mp3 with audio = segmented or original")
_RECORDING = re.compile(r"^(pos|neg)-(\d{4})-(\d+)-", re.IGNORECASE)
_SEGMENT_SUFFIX = re.compile(r"[-_]\d+$")
_METADATA = ("age", "gender", "smoker", "medical_history", "patient_reported_symptoms", "date")
_LABELS = {"positive": "positive", "negative": "negative", "pos": "positive", "neg": "negative"}


@register_dataset(
    name="virufy",
    task="classification",
    description="Virufy clinical COVID-19 coughs: 121 segmented coughs of 16 patients with PCR result. "
                "Label positive/negative, group = patient; audio=original lists the unsegmented recordings.",
    citation="G. Chaudhari et al., Virufy: Global Applicability of Crowdsourced and Clinical Datasets for AI "
             "Detection of COVID-19 from Cough Audio Samples, arXiv:2011.13320, 2020.",
    licence="CC BY-NC-SA 4.0 with Virufy's addenda (no redistribution without approval; cite the paper)",
    homepage="https://github.com/virufy/virufy-data",
    options={"audio": "folder under clinical/ to list: segmented (default), original, or a fork's "
                      "segmentation folder such as segment or simple"},
)
@loader
def list_virufy(data_dir, *, audio="segmented"):
    # The clinical/ folder itself is accepted too.
    root = data_dir if (data_dir / "labels.csv").exists() else \
        find_root(data_dir, "clinical/labels.csv", LAYOUT, dataset="virufy") / "clinical"
    audio_folder = root / audio
    if not audio_folder.is_dir():
        raise CoughclfError(f"{audio_folder} not found: 'virufy' expects {LAYOUT}")
    rows = read_table(root / "labels.csv", required=("cough_filename", "corona_test"), dataset="virufy")
    row_of = {row["cough_filename"].rsplit(".", 1)[0]: row for row in rows}
    clips = []
    for path in audio_files(audio_folder):
        recording = _recording_of(path.stem, row_of)
        row = row_of.get(recording)
        label = _LABELS.get((row["corona_test"] if row else recording[:3]).strip().lower())
        if label is None:
            raise CoughclfError(f"{path}: no labels.csv row for recording {recording!r} and no pos-/neg- prefix; "
                                f"'virufy' expects {LAYOUT}")
        patient = _RECORDING.match(recording)
        clips.append(Clip(id=path.relative_to(audio_folder).with_suffix("").as_posix(), path=path, label=label,
                          group=patient.group(3) if patient else recording,
                          metadata={"recording": recording,
                                    **{column: (row or {}).get(column) or "" for column in _METADATA}}))
    return require_clips(clips, audio_folder, LAYOUT, dataset="virufy")


def _recording_of(stem, row_of):
    """The labels.csv recording a file belongs to: itself, or the recording it was segmented from."""
    if stem in row_of:
        return stem
    return _SEGMENT_SUFFIX.sub("", stem)
