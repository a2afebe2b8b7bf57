"""Generic layouts for your own data: a folder per class, or a CSV manifest."""

import re
from pathlib import Path

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import audio_files, loader, read_table, require_clips, subfolders
from coughclf.errors import CoughclfError

FOLDER_LAYOUT = "{class}/**/*.wav|flac|ogg|mp3|webm (one sub-folder per class, any depth below it)"
CSV_LAYOUT = ("a CSV manifest with columns path (relative to the data folder, or absolute) and label, "
              "optional id, group, fold, split, transcript; other columns become metadata")
_CSV_FIELDS = ("id", "path", "label", "group", "fold", "split", "transcript")


@register_dataset(
    name="folder",
    task="classification",
    description="Your own recordings, one sub-folder per class. Label = folder name; group = file stem "
                "unless group_pattern extracts it (e.g. the speaker) from the file name.",
    citation="-",
    licence="that of your data",
    homepage="-",
    options={"group_pattern": "regular expression with one group, searched in each file name, whose match is "
                              r"the group (e.g. '^([^_]+)_' for speaker_take.wav); default: the file stem"},
)
@loader
def list_folder(data_dir, *, group_pattern=None):
    pattern = _compile(group_pattern)
    clips = []
    for class_folder in subfolders(data_dir):
        for path in audio_files(class_folder):
            relative = path.relative_to(data_dir).as_posix()
            clips.append(Clip(id=relative, path=path, label=class_folder.name,
                              group=_group(pattern, path) if pattern else path.stem))
    return require_clips(clips, data_dir, FOLDER_LAYOUT, dataset="folder")


def _compile(group_pattern):
    if not group_pattern:
        return None
    try:
        pattern = re.compile(group_pattern)
    except re.error as error:
        raise CoughclfError(f"option group_pattern={group_pattern!r} is not a valid regular expression: {error}") \
            from None
    if pattern.groups != 1:
        raise CoughclfError(f"option group_pattern={group_pattern!r} must have exactly one (group), "
                            f"it has {pattern.groups}")
    return pattern


def _group(pattern, path):
    match = pattern.search(path.name)
    if not match:
        raise CoughclfError(f"group_pattern {pattern.pattern!r} does not match the file name {path}; "
                            "adjust the pattern so that every file yields its group")
    return match.group(1)


@register_dataset(
    name="csv",
    task="classification",
    description="Your own recordings listed in a CSV manifest: path,label[,id,group,fold,split,transcript,...]. "
                "Group defaults to the path; extra columns become metadata.",
    citation="-",
    licence="that of your data",
    homepage="-",
    options={"manifest": "path of the CSV file (default: DATA_DIR/manifest.csv); relative audio paths are "
                         "relative to the data folder"},
)
@loader
def list_csv(data_dir, *, manifest=None):
    manifest_path = Path(manifest).expanduser() if manifest else data_dir / "manifest.csv"
    if not manifest_path.exists():
        raise CoughclfError(f"{manifest_path} not found: 'csv' expects {CSV_LAYOUT}")
    rows = read_table(manifest_path, required=("path", "label"), dataset="csv")
    clips, seen = [], set()
    for line_number, row in enumerate(rows, start=2):
        if not row["path"]:
            raise CoughclfError(f"{manifest_path} line {line_number}: empty path")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else data_dir / path
        clip_id = row.get("id") or row["path"]
        if clip_id in seen:
            raise CoughclfError(f"{manifest_path} line {line_number}: id {clip_id!r} appears twice; ids must be "
                                "unique")
        seen.add(clip_id)
        clips.append(Clip(id=clip_id, path=path, label=row.get("label") or None,
                          group=row.get("group") or row["path"],
                          fold=_fold(row.get("fold"), manifest_path, line_number),
                          split=row.get("split") or None,
                          transcript=row.get("transcript") or None,
                          metadata={key: value or "" for key, value in row.items()
                                    if key and key not in _CSV_FIELDS}))
    return require_clips(clips, data_dir, CSV_LAYOUT, dataset="csv")


def _fold(text, manifest_path, line_number):
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise CoughclfError(f"{manifest_path} line {line_number}: fold {text!r} is not an integer") from None
