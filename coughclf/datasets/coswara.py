"""Coswara (IISc): ``{date}/{id}/cough-heavy.wav, cough-shallow.wav, ...`` and ``{date}/{date}.csv``."""

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import loader, read_table, require_clips, subfolders
from coughclf.errors import CoughclfError

LAYOUT = ("{date}/{id}/{sound}.wav (cough-heavy, cough-shallow, breathing-deep, counting-normal, vowel-a, ...) "
          "and {date}/{date}.csv with columns id, covid_status, ...")
DEFAULT_SOUNDS = "cough-heavy,cough-shallow"
NEGATIVE_STATUS = "healthy"
POSITIVE_PREFIX = "positive"
# Coswara's short column names for the demographics the manifest keeps.
_DEMOGRAPHICS = {"age": ("a", "age"), "gender": ("g", "gender")}


@register_dataset(
    name="coswara",
    task="classification",
    description="Coswara: breathing, cough, vowel and counting recordings of participants with their COVID-19 "
                "status, 44.1/48 kHz. positive_* statuses -> positive, healthy -> negative, others dropped "
                "unless keep_all; group = participant.",
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
    date_folders = [folder for folder in subfolders(data_dir) if (folder / f"{folder.name}.csv").exists()]
    if not date_folders:
        raise CoughclfError(f"no {{date}}/{{date}}.csv found in {data_dir}: 'coswara' expects {LAYOUT}")
    clips = []
    for folder in date_folders:
        for row in read_table(folder / f"{folder.name}.csv", required=("id", "covid_status"), dataset="coswara"):
            label = _label(row["covid_status"].strip(), keep_all)
            participant = folder / row["id"]
            if label is None or not participant.is_dir():
                continue
            demographics = {key: next((row[name] for name in names if row.get(name)), "")
                            for key, names in _DEMOGRAPHICS.items()}
            for sound in chosen:
                path = participant / f"{sound}.wav"
                if path.exists():
                    clips.append(Clip(id=f"{folder.name}/{row['id']}/{sound}", path=path, label=label,
                                      group=row["id"],
                                      metadata={"sound": sound, "date": folder.name,
                                                "covid_status": row["covid_status"], **demographics}))
    return require_clips(clips, data_dir, LAYOUT, dataset="coswara")


def _label(status, keep_all):
    if status.startswith(POSITIVE_PREFIX):
        return "positive"
    if status == NEGATIVE_STATUS:
        return "negative"
    return status if keep_all and status else None
