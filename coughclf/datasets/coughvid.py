"""COUGHVID (Zenodo record 4498364): ``metadata_compiled.csv`` and ``public_dataset/{uuid}.webm|.ogg``.

A kept row whose recording is absent is listed as ``{uuid}.webm`` all the same, so ``prepare``
reports it in ``skipped.csv``.
"""

from collections import Counter

from coughclf.datasets.base import Archive, Clip, register_dataset
from coughclf.datasets.layout import file_names, loader, read_table, require_clips
from coughclf.errors import CoughclfError

LAYOUT = ("metadata_compiled.csv (leading unnamed index column, then uuid, datetime, cough_detected, [SNR,] "
          "latitude, longitude, age, gender, ..., status, ...) with {uuid}.webm or {uuid}.ogg beside it or in "
          "public_dataset/")
METADATA_FILE = "metadata_compiled.csv"
THREE_CLASSES = ("COVID-19", "healthy", "symptomatic")
# 2-class variant of the reports: COVID-19 against healthy; "negative" sorts first so index 1 is positive.
TWO_CLASS_LABEL = {"COVID-19": "positive", "healthy": "negative"}
EXPERT_FIELDS = ("quality", "cough_type", "dyspnea", "wheezing", "stridor", "choking", "congestion", "nothing",
                 "diagnosis", "severity")
EXPERTS = 4
_SELF_REPORTED = ("age", "gender", "respiratory_condition", "fever_muscle_pain", "cough_detected", "SNR")


@register_dataset(
    name="coughvid",
    task="classification",
    description="COUGHVID: crowdsourced cough recordings (webm/ogg) with self-reported status and, for a "
                "subset, labels from four experts. Rows without status are dropped and cough_detected >= 0.8 "
                "is kept by default; 3 classes (COVID-19/healthy/symptomatic) or 2 (positive = COVID-19, "
                "negative = healthy). Group = recording uuid.",
    citation="L. Orlandic, T. Teijeiro and D. Atienza, The COUGHVID crowdsourcing dataset, a corpus for the "
             "study of large-scale cough analysis algorithms, Scientific Data 8, 156 (2021).",
    licence="CC BY 4.0",
    homepage="https://zenodo.org/records/4498364",
    options={
        "classes": "3 (COVID-19, healthy, symptomatic; default) or 2 (positive = COVID-19, negative = healthy)",
        "min_cough_detected": "keep rows whose cough_detected score is at least this (default 0.8)",
        "expert_labels": "true adds the expert columns quality_1..severity_4 to the metadata",
        "drop_gender_other": "true drops rows whose gender is 'other' (report 3's cleaning)",
        "min_age_count": "drop rows whose age value occurs fewer than N times among the kept rows (report 3 "
                         "used 100; default 0 keeps all; rows without age are kept)",
    },
    archives=(Archive(url="https://zenodo.org/records/4498364/files/public_dataset.zip?download=1",
                      filename="public_dataset.zip"),),
)
@loader
def list_coughvid(data_dir, *, classes=3, min_cough_detected=0.8, expert_labels=False, drop_gender_other=False,
                  min_age_count=0):
    if classes not in (2, 3):
        raise CoughclfError(f"option classes={classes} for 'coughvid' must be 2 or 3")
    metadata_folder = next((folder for folder in (data_dir, data_dir / "public_dataset")
                            if (folder / METADATA_FILE).exists()), None)
    if metadata_folder is None:
        raise CoughclfError(f"{data_dir / METADATA_FILE} not found: 'coughvid' expects {LAYOUT}")
    audio_folder = data_dir / "public_dataset" if (data_dir / "public_dataset").is_dir() else metadata_folder
    rows = read_table(metadata_folder / METADATA_FILE, required=("uuid", "cough_detected", "status"),
                      dataset="coughvid")
    audio_of = _audio_by_uuid(audio_folder)

    rows = [row for row in rows if row["status"] in THREE_CLASSES
            and (min_cough_detected <= 0 or _score(row["cough_detected"]) >= min_cough_detected)]
    if classes == 2:
        rows = [row for row in rows if row["status"] in TWO_CLASS_LABEL]
    if drop_gender_other:
        rows = [row for row in rows if row.get("gender", "").strip().lower() != "other"]
    if min_age_count:
        age_counts = Counter(row.get("age", "") for row in rows)
        rows = [row for row in rows if not row.get("age", "") or age_counts[row["age"]] >= min_age_count]

    metadata_columns = [column for column in _SELF_REPORTED if column in rows[0]] if rows else []
    if expert_labels:
        metadata_columns += [f"{field}_{expert}" for expert in range(1, EXPERTS + 1) for field in EXPERT_FIELDS
                             if rows and f"{field}_{expert}" in rows[0]]
    clips = [Clip(id=row["uuid"],
                  path=audio_folder / audio_of.get(row["uuid"], f"{row['uuid']}.webm"),
                  label=TWO_CLASS_LABEL[row["status"]] if classes == 2 else row["status"],
                  group=row["uuid"],
                  metadata={column: row[column] or "" for column in metadata_columns})
             for row in rows]
    return require_clips(sorted(clips, key=lambda clip: clip.id), data_dir, LAYOUT, dataset="coughvid")


def _audio_by_uuid(folder):
    """uuid -> file name of its recording; .webm is preferred when both exist (the original upload)."""
    audio_of = {}
    for name in file_names(folder, (".ogg", ".webm")):
        stem, suffix = name.rsplit(".", 1)
        if suffix.lower() == "webm" or stem not in audio_of:
            audio_of[stem] = name
    return audio_of


def _score(text):
    try:
        return float(text)
    except ValueError:
        return float("nan")
