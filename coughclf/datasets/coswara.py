"""Coswara (IISc), in the layouts the release has had.

The repository ships each day as ``{date}/{date}.csv`` (id, covid_status, a, g, ...) beside the
compressed audio (``{date}/{date}.tar.gz.aa``, ...); the release's ``extract_data.py`` unpacks the
audio into ``Extracted_data/{date}/{id}/{sound}.wav``. Newer releases add ``combined_data.csv`` at
the root, one table for every day (its ``record_date`` names the day, as 2020-04-13). Older copies and hand-made
subsets keep the audio beside the tables, as ``{date}/{id}/{sound}.wav``. All three are read: the
rows come from ``combined_data.csv`` when present, else from every ``{date}/{date}.csv``, and each
participant's folder is looked up under ``Extracted_data/`` first, then beside the tables.

Statuses: ``positive_*`` → positive, ``healthy`` → negative; other statuses (recovered, exposed,
symptomatic without a test, ...) are left out with a warning that counts them, unless ``keep_all``.
A listed participant without a recording of a chosen sound is listed anyway, so ``prepare``
reports it in ``skipped.csv``.
"""

import collections
import warnings

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import loader, read_table, require_clips, subfolders
from coughclf.errors import CoughclfError

LAYOUT = ("{date}/{date}.csv (id, covid_status, ...) or combined_data.csv (id, covid_status, record_date, ...), "
          "with the audio at Extracted_data/{date}/{id}/{sound}.wav (as the release's extract_data.py writes it) "
          "or {date}/{id}/{sound}.wav (sounds: cough-heavy, cough-shallow, breathing-deep, counting-normal, "
          "vowel-a, ...)")
COMBINED_TABLE = "combined_data.csv"
EXTRACTED = "Extracted_data"
DEFAULT_SOUNDS = "cough-heavy,cough-shallow"
NEGATIVE_STATUS = "healthy"
POSITIVE_PREFIX = "positive"
# Coswara's short column names for the demographics the manifest keeps.
_DEMOGRAPHICS = {"age": ("a", "age"), "gender": ("g", "gender")}
_DATE_COLUMNS = ("record_date", "date")


@register_dataset(
    name="coswara",
    task="classification",
    description="Coswara: breathing, cough, vowel and counting recordings of participants with their COVID-19 "
                "status, 44.1/48 kHz. positive_* statuses -> positive, healthy -> negative, others left out "
                "(with a warning that counts them) unless keep_all; group = participant. Reads the release "
                "layout (Extracted_data/, combined_data.csv) and audio kept beside the date tables.",
    citation="N. Sharma et al., Coswara - A Database of Breathing, Cough, and Voice Sounds for COVID-19 "
             "Diagnosis, Interspeech 2020.",
    licence="CC BY 4.0",
    homepage="https://github.com/iiscleap/Coswara-Data",
    options={
        "sounds": f"comma-separated recordings to list per participant (default {DEFAULT_SOUNDS})",
        "keep_all": "true keeps every covid_status; statuses other than healthy/positive_* keep their own name "
                    "as the label",
    },
)
@loader
def list_coswara(data_dir, *, sounds=DEFAULT_SOUNDS, keep_all=False):
    chosen = [sound.strip() for sound in sounds.split(",") if sound.strip()]
    if not chosen:
        raise CoughclfError("option sounds for 'coswara' is empty; name at least one recording, e.g. cough-heavy")
    rows = _rows(data_dir)
    folders = _participant_folders(data_dir)
    if not folders:
        raise CoughclfError(_no_audio_message(data_dir))
    clips, left_out = [], collections.Counter()
    for date, row in rows:
        status = row["covid_status"].strip()
        label = _label(status, keep_all)
        if label is None:
            left_out[status or "(empty)"] += 1
            continue
        participant = row["id"].strip()
        # combined_data.csv writes the day as 2020-04-13; the folders are named 20200413.
        hint = next((row[column].strip() for column in _DATE_COLUMNS if (row.get(column) or "").strip()), date)
        hint = hint.replace("-", "") if hint else None
        folder = folders.get((hint, participant)) or folders.get((None, participant))
        date = folder.parent.name if folder else hint
        folder = folder or data_dir / EXTRACTED / (date or "") / participant
        demographics = {key: next((row[name] for name in names if row.get(name)), "")
                        for key, names in _DEMOGRAPHICS.items()}
        for sound in chosen:
            clips.append(Clip(id=f"{date}/{participant}/{sound}" if date else f"{participant}/{sound}",
                              path=folder / f"{sound}.wav", label=label, group=participant,
                              metadata={"sound": sound, "date": date or "", "covid_status": status, **demographics}))
    if left_out:
        counts = ", ".join(f"{status} {count}" for status, count in left_out.most_common())
        total = sum(left_out.values())
        warnings.warn(f"coswara: {total} participant{'s' if total != 1 else ''} left out whose covid_status is "
                      f"neither healthy nor positive_* ({counts}); --option keep_all=true keeps them under their "
                      "own status", stacklevel=3)
    return require_clips(clips, data_dir, LAYOUT, dataset="coswara")


def _rows(data_dir):
    """``[(date or None, row), ...]`` from combined_data.csv, else from every {date}/{date}.csv."""
    if (data_dir / COMBINED_TABLE).exists():
        return [(None, row) for row in read_table(data_dir / COMBINED_TABLE, required=("id", "covid_status"),
                                                  dataset="coswara")]
    tables = [folder / f"{folder.name}.csv" for folder in subfolders(data_dir)
              if (folder / f"{folder.name}.csv").exists()]
    if not tables:
        raise CoughclfError(f"no {{date}}/{{date}}.csv or {COMBINED_TABLE} found in {data_dir}: 'coswara' "
                            f"expects {LAYOUT}")
    return [(table.parent.name, row) for table in tables
            for row in read_table(table, required=("id", "covid_status"), dataset="coswara")]


def _participant_folders(data_dir):
    """``{(date, id): folder}`` and ``{(None, id): folder}`` for every participant folder found."""
    folders = {}
    for base in (data_dir / EXTRACTED, data_dir):
        if not base.is_dir():
            continue
        for date_folder in subfolders(base):
            if date_folder.name == EXTRACTED:
                continue
            for participant in subfolders(date_folder):
                folders.setdefault((date_folder.name, participant.name), participant)
                folders.setdefault((None, participant.name), participant)
    return folders


def _no_audio_message(data_dir):
    compressed = sorted(path.name for path in data_dir.glob("*/*.tar.gz*"))[:1]
    if compressed:
        return (f"the Coswara audio in {data_dir} is still compressed (e.g. {compressed[0]}); run the release's "
                f"extract_data.py there (it writes {EXTRACTED}/) and pass the same folder again")
    return f"no participant folders with audio in {data_dir}: 'coswara' expects {LAYOUT}"


def _label(status, keep_all):
    if status.startswith(POSITIVE_PREFIX):
        return "positive"
    if status == NEGATIVE_STATUS:
        return "negative"
    return status if keep_all and status else None
