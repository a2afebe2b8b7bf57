"""Group-aware, stratified train/validation/test splits and k-fold cross-validation.

Every function takes manifest rows (dicts with at least ``id``, ``label``,
``group``; ``split`` and ``fold`` for the predefined methods) and returns clip
ids. A group (speaker, patient, duplicate recording) never lands on two sides;
classes keep their proportions where the data allows (scikit-learn's
``StratifiedGroupKFold``). Rows are ordered by id first, so the result depends
only on the rows and the seed, not on their order. A row with an empty group is
its own group; with ``group_by=False`` every clip is (a clip-level split).

Whole groups cannot make every fraction: two books cannot give a 5 % test part. A part
that lands far from its fraction (:data:`TOLERANCE`) is an error naming both shares and
the ways out, never a silently different split.
"""

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedGroupKFold

from coughclf.errors import CoughclfError

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_METHODS = ("random", "official", "fold")
# A held-out part may miss its fraction of the clips by this much (absolute), or by the fraction itself
# if that is more (up to twice it): whole groups rarely divide exactly, and few groups divide coarsely.
TOLERANCE = 0.1
WAYS_OUT = ('set split.group_by = "none" for a clip-level split (a speaker\'s clips may then be on both sides), '
            'give explicit folds (split.method = "fold" with train_folds/val_folds/test_folds), or change the '
            'fraction')


def split_ids(rows, *, method="random", val=0.1, test=0.2, seed=0, stratify=True, test_fold=None, group_by=True):
    """Train/validation/test ids: ``{"train": [...], "validation": [...], "test": [...]}``.

    method:
        ``"random"``: ``test`` and then ``val`` (fractions of all clips, rounded to the
        nearest 1/n of the groups) are held out by group, stratified by label.
        ``"official"``: the dataset's own ``split`` column; when it has no validation
        rows, ``val`` of all clips is carved out of train by group.
        ``"fold"``: the predefined ``fold`` column; ``test_fold`` (default: the
        highest fold) is the test set and ``val`` is carved out of the rest by group.

    ``group_by=False`` splits clips, not groups.
    """
    table = _Table(rows, group_by)
    if method == "random":
        rest, test_part = table.hold_out(np.arange(len(table)), test, seed, stratify, "split.test")
        train, validation = table.hold_out(rest, _fraction_of(val, len(rest), len(table)), seed, stratify,
                                           "split.val")
        return table.named(train, validation, test_part)
    if method == "official":
        splits = table.column("split")
        unknown = sorted(set(splits) - set(SPLIT_NAMES))
        if unknown:
            raise CoughclfError(f"the manifest's split column holds {unknown}, expected only {SPLIT_NAMES}; "
                                "use --split random for datasets without an official split")
        members = {name: np.flatnonzero(splits == name) for name in SPLIT_NAMES}
        train, validation = members["train"], members["validation"]
        if validation.size == 0:
            train, validation = table.hold_out(train, _fraction_of(val, len(train), len(table)), seed, stratify,
                                               "split.val")
        return table.named(train, validation, members["test"])
    if method == "fold":
        folds = table.folds()
        chosen = max(folds) if test_fold is None else int(test_fold)
        if chosen not in set(folds):
            raise CoughclfError(f"test fold {chosen} does not exist; the manifest's folds are {sorted(set(folds))}")
        rest = np.flatnonzero(folds != chosen)
        train, validation = table.hold_out(rest, _fraction_of(val, len(rest), len(table)), seed, stratify,
                                           "split.val")
        return table.named(train, validation, np.flatnonzero(folds == chosen))
    raise CoughclfError(f"unknown split method {method!r}; choose one of {', '.join(SPLIT_METHODS)}")


def kfold(rows, k=5, seed=0, predefined=False, group_by=True):
    """``[(train_ids, test_ids), ...]``: k group-aware folds, stratified by label when labelled.

    With ``predefined=True`` the manifest's ``fold`` column defines the folds (one
    split per fold value, in order) and ``k`` is ignored; ``group_by=False`` folds clips.
    """
    table = _Table(rows, group_by)
    if predefined:
        folds = table.folds()
        return [table.ids_pair(np.flatnonzero(folds != fold), np.flatnonzero(folds == fold))
                for fold in sorted(set(folds))]
    _require_groups(table.groups, k, f"{k}-fold cross-validation")
    if table.stratifiable(np.arange(len(table))):
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [table.ids_pair(train, test)
            for train, test in splitter.split(table.ids, table.labels, table.groups)]


def _fraction_of(fraction_of_all, part_size, total):
    """The share of a part that makes ``fraction_of_all`` of the whole, capped at one half."""
    return min(fraction_of_all * total / part_size, 0.5) if part_size else 0.0


def _require_groups(groups, count, purpose):
    found = len(set(groups))
    if found < count:
        raise CoughclfError(f"{purpose} needs at least {count} groups (speakers/patients/books) but the "
                            f"clips come from {found}; use fewer folds, or {WAYS_OUT}")


class _Table:
    """Manifest rows as id-sorted arrays."""

    def __init__(self, rows, group_by=True):
        rows = sorted(rows, key=lambda row: row["id"])
        if not rows:
            raise CoughclfError("no clips to split: the manifest is empty")
        self.rows = rows
        self.ids = np.array([row["id"] for row in rows])
        self.labels = np.array([row.get("label") or "" for row in rows])
        self.groups = np.array([(row.get("group") if group_by else None) or row["id"] for row in rows])

    def __len__(self):
        return len(self.rows)

    def column(self, name):
        return np.array([row.get(name) or "" for row in self.rows])

    def folds(self):
        values = self.column("fold")
        if np.any(values == ""):
            raise CoughclfError("the manifest has no fold for some clips; predefined folds need a dataset "
                                "that defines them (e.g. esc50, urbansound8k)")
        return values.astype(float).astype(int)

    def stratifiable(self, members):
        labels = self.labels[members]
        return bool(np.all(labels != "")) and len(set(labels)) > 1

    def hold_out(self, members, fraction, seed, stratify, key):
        """(kept, held out) positions: about ``fraction`` of ``members``, whole groups only.

        ``key`` names the fraction's config key in the error when whole groups cannot make it.
        """
        if fraction <= 0 or members.size == 0:
            return members, members[:0]
        groups = self.groups[members]
        if stratify and self.stratifiable(members):
            n_splits = max(2, int(round(1.0 / fraction)))
            _require_groups(groups, n_splits, f"holding out {fraction:.0%} of the clips")
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            kept, held = next(splitter.split(members, self.labels[members], groups))
        else:
            _require_groups(groups, 2, f"holding out {fraction:.0%} of the clips")
            splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            kept, held = next(splitter.split(members, groups=groups))
        share = len(held) / len(members)
        if abs(share - fraction) > max(TOLERANCE, fraction):
            raise CoughclfError(
                f"{key}: holding out {fraction:.0%} of {len(members)} clips by group gives {share:.0%} "
                f"({len(set(groups[held]))} of {len(set(groups))} groups): too few groups (speakers/patients/books) "
                f"to honour the fraction; {WAYS_OUT}")
        return np.sort(members[kept]), np.sort(members[held])

    def named(self, train, validation, test):
        return {name: self.ids[part].tolist() for name, part in zip(SPLIT_NAMES, (train, validation, test))}

    def ids_pair(self, train, test):
        return self.ids[train].tolist(), self.ids[test].tolist()
