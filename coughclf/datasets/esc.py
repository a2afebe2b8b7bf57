"""ESC-50 (``audio/`` + ``meta/esc50.csv``, ESC-10 through its ``esc10`` column) and the older ESC-10 release."""

import re

from coughclf.datasets.base import Archive, Clip, register_dataset
from coughclf.datasets.layout import (file_names, find_root, loader, read_table, require_clips, require_folder,
                                      subfolders)
from coughclf.errors import CoughclfError

ESC50_LAYOUT = ("audio/{fold}-{freesound_id}-{take}-{target}.wav and meta/esc50.csv "
                "(filename, fold, target, category, esc10, src_file, take)")
ESC10_LAYOUT = "'{NNN} - {Class name}/{fold}-{freesound_id}-{take}.ogg' folders (the standalone ESC-10 release)"
_ESC_CITATION = "K. J. Piczak, ESC: Dataset for Environmental Sound Classification, ACM Multimedia 2015."
_ESC10_FOLDER = re.compile(r"^(\d{3}) - (.+)$")
_ESC10_FILE = re.compile(r"^(\d+)-(\d+)-([A-Za-z0-9]+)\.(ogg|wav)$", re.IGNORECASE)


@register_dataset(
    name="esc50",
    task="classification",
    description="ESC-50: 2,000 five-second environmental recordings in 50 classes, 5 predefined folds, "
                "44.1 kHz. Label = category, group = source recording (src_file); esc10=true keeps the "
                "ESC-10 subset.",
    citation=_ESC_CITATION,
    licence="CC BY-NC 3.0",
    homepage="https://github.com/karolpiczak/ESC-50",
    options={"esc10": "true keeps only the ESC-10 rows (esc10 column True): 400 clips, 10 classes"},
    archives=(Archive(url="https://github.com/karolpiczak/ESC-50/archive/refs/heads/master.zip",
                      filename="ESC-50-master.zip"),),
)
@loader
def list_esc50(data_dir, *, esc10=False):
    root = find_root(data_dir, "meta/esc50.csv", ESC50_LAYOUT, dataset="esc50")
    require_folder(root / "audio", ESC50_LAYOUT, dataset="esc50")
    rows = read_table(root / "meta" / "esc50.csv", dataset="esc50",
                      required=("filename", "fold", "category", "esc10", "src_file"))
    clips = []
    for row in rows:
        in_esc10 = row["esc10"].strip().lower() == "true"
        if esc10 and not in_esc10:
            continue
        clips.append(Clip(
            id=row["filename"].rsplit(".", 1)[0],
            path=root / "audio" / row["filename"],
            label=row["category"],
            group=row["src_file"],
            fold=int(row["fold"]),
            metadata={"target": row.get("target", ""), "take": row.get("take", ""),
                      "esc10": str(in_esc10).lower()},
        ))
    return require_clips(clips, root, ESC50_LAYOUT, dataset="esc50")


@register_dataset(
    name="esc10",
    task="classification",
    description="ESC-10, the older standalone release: 400 five-second recordings in 10 classes, 5 folds "
                "(fold from the file name). Label = class name, group = freesound clip id.",
    citation=_ESC_CITATION,
    licence="CC BY-NC 3.0",
    homepage="https://github.com/karolpiczak/ESC-50",
)
@loader
def list_esc10(data_dir):
    root = data_dir if _class_folders(data_dir) else None
    if root is None:
        nested = [child for child in subfolders(data_dir) if _class_folders(child)]
        if len(nested) != 1:
            raise CoughclfError(f"no '000 - Class name' folders in {data_dir}: 'esc10' expects {ESC10_LAYOUT}")
        root = nested[0]
    clips = []
    for folder, folder_match in _class_folders(root):
        for name in file_names(folder, (".ogg", ".wav")):
            match = _ESC10_FILE.match(name)
            if not match:
                raise CoughclfError(f"{folder / name} is not named '{{fold}}-{{freesound_id}}-{{take}}.ogg' "
                                    f"as 'esc10' expects ({ESC10_LAYOUT})")
            clips.append(Clip(id=f"{folder_match.group(1)}/{name.rsplit('.', 1)[0]}", path=folder / name,
                              label=folder_match.group(2), group=match.group(2), fold=int(match.group(1)),
                              metadata={"take": match.group(3)}))
    return require_clips(clips, root, ESC10_LAYOUT, dataset="esc10")


def _class_folders(folder):
    """(folder, match) for each '{NNN} - {Class name}' sub-folder of ``folder``."""
    matches = [(child, _ESC10_FOLDER.match(child.name)) for child in subfolders(folder)]
    return [(child, match) for child, match in matches if match]
