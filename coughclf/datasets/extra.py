"""Extra training data from other corpora: ``[[data.extra_train]]``.

A small corpus with few speakers (FSDD: six) teaches a model its voices; clips of
the same classes from another corpus with many speakers (Speech Commands digits)
teach it the words. Each ``[[data.extra_train]]`` entry names a registered dataset,
its folder, its loader options and how its labels map onto the main dataset's
classes; its clips join the main dataset's cache and always train, never validate
or test, so every split, fold and held-out speaker of the main dataset stays what
it was. Every clip carries ``meta_corpus`` (the dataset it came from), which
``[balance] within = "meta_corpus"`` uses to weight the corpora.

Example config::

    [data]
    dataset = "fsdd"
    data_dir = "../shared/data/fsdd"

    [[data.extra_train]]
    dataset = "speech_commands"
    data_dir = "../shared/data/speech_commands_sample"
    options = { words = "digits" }
    labels = { zero = "0", one = "1", two = "2" }   # ... every word that is not a main class
"""

import dataclasses
from pathlib import Path

from coughclf.errors import CoughclfError

EXTRA_SPLIT = "extra"
CORPUS_COLUMN = "corpus"
ENTRY_KEYS = {"dataset": str, "data_dir": str, "options": dict, "labels": dict}
REQUIRED_KEYS = ("dataset", "data_dir")


def check_entries(entries, source):
    """Fail with the key's name for a malformed ``data.extra_train`` list (before anything is read).

    Whether each ``data_dir`` exists is :func:`check_folders`' business, as for ``data.data_dir``:
    a config is valid on a machine without the data.
    """
    from coughclf import datasets

    for position, entry in enumerate(entries):
        where = f"{source}: data.extra_train[{position}]"
        if not isinstance(entry, dict):
            raise CoughclfError(f"{where} must be a table with dataset, data_dir, options, labels")
        for key, value in entry.items():
            if key not in ENTRY_KEYS:
                raise CoughclfError(f"{where}: unknown key {key!r}; use {', '.join(ENTRY_KEYS)}")
            if not isinstance(value, ENTRY_KEYS[key]):
                raise CoughclfError(f"{where}.{key} must be a {ENTRY_KEYS[key].__name__}, got {value!r}")
        for key in REQUIRED_KEYS:
            if key not in entry:
                raise CoughclfError(f"{where}: {key} is required")
        if entry["dataset"] not in datasets.available():
            raise CoughclfError(f"{where}.dataset = {entry['dataset']!r} is not a known dataset; choose one "
                                f"of: {', '.join(datasets.available())}")


def check_folders(entries, source):
    """Fail naming the entry when an extra corpus's ``data_dir`` is not a folder."""
    for position, entry in enumerate(entries):
        if not Path(entry["data_dir"]).is_dir():
            raise CoughclfError(f"{source}: data.extra_train[{position}].data_dir = {entry['data_dir']!r} is not "
                                "a folder; download that dataset there or fix the path")


def combined_clips(main_name, main_clips, entries):
    """The main dataset's clips followed by every extra corpus's, all tagged with ``corpus``.

    Extra clips get ids and groups prefixed with their dataset (no clash with the main
    ids or speakers), their labels mapped through ``labels``, ``split = "extra"`` and no
    fold. A label that is no class of the main dataset after mapping is an error naming
    it: an extra corpus adds examples, never classes.
    """
    from coughclf import datasets

    if not entries:
        return list(main_clips)
    main_clips = [_tagged(clip, main_name) for clip in main_clips]
    classes = {clip.label for clip in main_clips}
    clips = list(main_clips)
    for entry in entries:
        name, labels = entry["dataset"], entry.get("labels", {})
        for clip in datasets.get(name).list_clips(Path(entry["data_dir"]), **entry.get("options", {})):
            label = labels.get(clip.label, clip.label)
            if label not in classes:
                raise CoughclfError(
                    f"data.extra_train {name}: label {clip.label!r} ({clip.path}) is not a class of "
                    f"{main_name} ({', '.join(sorted(map(str, classes)))}); map it with labels = "
                    f"{{ {clip.label} = \"...\" }} or leave its clips out with the loader's options")
            clips.append(dataclasses.replace(
                _tagged(clip, name), id=f"{name}/{clip.id}", group=f"{name}/{clip.group}", label=label,
                fold=None, split=EXTRA_SPLIT))
    return clips


def _tagged(clip, corpus):
    return dataclasses.replace(clip, metadata={**clip.metadata, CORPUS_COLUMN: corpus})


def without_extra(cache):
    """``(view, extra_ids)``: a view of ``cache`` whose manifest holds only the main dataset's clips
    (what splits and folds are made from), and the ids of the extra training clips."""
    main = [row for row in cache.manifest if row.get("split") != EXTRA_SPLIT]
    extra = [row["id"] for row in cache.manifest if row.get("split") == EXTRA_SPLIT]
    if not extra:
        return cache, []
    return _ManifestView(cache.root, main), extra


def with_extra(parts, extra_ids):
    """``parts`` (train/validation/test ids) with the extra clips added to training."""
    return {**parts, "train": [*parts["train"], *extra_ids]} if extra_ids else parts


@dataclasses.dataclass(frozen=True)
class _ManifestView:
    root: Path
    manifest: list
