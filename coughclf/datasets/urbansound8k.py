"""UrbanSound8K: ``audio/fold{1..10}/*.wav`` and ``metadata/UrbanSound8K.csv``."""

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import find_root, loader, read_table, require_clips, require_folder

LAYOUT = ("audio/fold{1..10}/{slice_file_name} and metadata/UrbanSound8K.csv "
          "(slice_file_name, fsID, start, end, salience, fold, classID, class)")


@register_dataset(
    name="urbansound8k",
    task="classification",
    description="UrbanSound8K: 8,732 urban sound excerpts (<= 4 s) in 10 classes and 10 predefined folds. "
                "Label = class, group = freesound recording (fsID).",
    citation="J. Salamon, C. Jacoby and J. P. Bello, A Dataset and Taxonomy for Urban Sound Research, "
             "ACM Multimedia 2014.",
    licence="CC BY-NC 3.0",
    homepage="https://urbansounddataset.weebly.com/urbansound8k.html",
)
@loader
def list_urbansound8k(data_dir):
    root = find_root(data_dir, "metadata/UrbanSound8K.csv", LAYOUT, dataset="urbansound8k")
    require_folder(root / "audio", LAYOUT, dataset="urbansound8k")
    rows = read_table(root / "metadata" / "UrbanSound8K.csv", dataset="urbansound8k",
                      required=("slice_file_name", "fsID", "fold", "class"))
    clips = [Clip(id=row["slice_file_name"].rsplit(".", 1)[0],
                  path=root / "audio" / f"fold{row['fold']}" / row["slice_file_name"],
                  label=row["class"],
                  group=row["fsID"],
                  fold=int(row["fold"]),
                  metadata={key: row.get(key, "") for key in ("classID", "salience", "start", "end")})
             for row in rows]
    return require_clips(clips, root, LAYOUT, dataset="urbansound8k")
