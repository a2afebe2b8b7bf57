"""Free Spoken Digit Dataset: ``recordings/{digit}_{speaker}_{index}.wav``."""

import re

from coughclf.datasets.base import Archive, Clip, register_dataset
from coughclf.datasets.layout import file_names, find_root, loader, read_table, require_clips

LAYOUT = "recordings/{digit}_{speaker}_{index}.wav (speakers.csv optional)"
_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)\.wav$", re.IGNORECASE)
# The FSDD README's official split: the first five takes of every digit and speaker are test.
# The next five are validation, so early stopping sees new takes of known voices, as the test
# does; carving validation out by speaker would need a whole speaker of only six.
TEST_TAKES, VALIDATION_TAKES = range(0, 5), range(5, 10)


def official_split(take):
    """``"test"`` for takes 0–4 (the FSDD README's split), ``"validation"`` for 5–9, else ``"train"``."""
    return "test" if take in TEST_TAKES else "validation" if take in VALIDATION_TAKES else "train"


@register_dataset(
    name="fsdd",
    task="classification",
    description="Free Spoken Digit Dataset: speakers saying the digits 0-9, 8 kHz. Label = digit, "
                "group = speaker, split = official (take 0-4 test; 5-9 validation), fold = speaker "
                "(leave-one-speaker-out).",
    citation="Z. Jackson et al., Free Spoken Digit Dataset (FSDD), "
             "https://github.com/Jakobovski/free-spoken-digit-dataset, 2018.",
    licence="CC BY-SA 4.0",
    homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
    archives=(Archive(url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip",
                      filename="free-spoken-digit-dataset-master.zip"),),
)
@loader
def list_fsdd(data_dir):
    root = find_root(data_dir, "recordings", LAYOUT, dataset="fsdd", missing_ok=True)
    recordings = root / "recordings" if root else data_dir  # or the recordings folder itself
    parsed = [(name, _NAME.match(name)) for name in file_names(recordings, (".wav",))]
    parsed = [(name, match) for name, match in parsed if match]
    require_clips(parsed, data_dir, LAYOUT, dataset="fsdd")
    speakers = sorted({match.group(2) for _, match in parsed})
    fold_of = {speaker: position for position, speaker in enumerate(speakers, start=1)}
    speaker_columns, speaker_info = _speaker_table(recordings.parent)
    clips = []
    for name, match in parsed:
        digit, speaker, take = match.group(1), match.group(2), int(match.group(3))
        clips.append(Clip(
            id=name[:-4],
            path=recordings / name,
            label=digit,
            group=speaker,
            fold=fold_of[speaker],
            split=official_split(take),
            metadata={"speaker": speaker, "take": str(take),
                      **{column: speaker_info.get(speaker, {}).get(column, "") for column in speaker_columns}},
        ))
    return clips


def _speaker_table(folder):
    """Columns and rows of speakers.csv (speaker, gender, accent, language) keyed by speaker, if present."""
    table = folder / "speakers.csv"
    if not table.exists():
        return (), {}
    rows = read_table(table, required=("speaker",), dataset="fsdd")
    columns = [column for column in rows[0] if column and column != "speaker"] if rows else []
    return columns, {row["speaker"]: row for row in rows}
