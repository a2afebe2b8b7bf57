"""Splits never put a group on two sides, keep class proportions, and repeat under a seed."""

import collections

import numpy as np
import pytest

from coughclf.errors import CoughclfError
from coughclf.splits import kfold, split_ids

CLASS_SHARES = {"cough": 0.5, "speech": 0.3, "noise": 0.2}


def manifest(groups=80, seed=0, labelled=True, with_split=False, folds=0):
    """Rows of ``groups`` speakers with 1-6 clips each; a speaker's clips share a class (imbalanced)."""
    rng = np.random.default_rng(seed)
    names = list(CLASS_SHARES)
    rows = []
    for group in range(groups):
        label = rng.choice(names, p=list(CLASS_SHARES.values())) if labelled else ""
        for take in range(rng.integers(1, 7)):
            row = {"id": f"s{group:03d}-{take}", "label": label, "group": f"speaker{group}", "split": "", "fold": ""}
            if with_split:
                row["split"] = "test" if group % 5 == 0 else "train"
            if folds:
                row["fold"] = str(group % folds + 1)
            rows.append(row)
    rng.shuffle(rows)
    return rows


def groups_of(rows, ids):
    group = {row["id"]: row["group"] for row in rows}
    return {group[clip_id] for clip_id in ids}


def class_shares(rows, ids):
    label = {row["id"]: row["label"] for row in rows}
    counts = collections.Counter(label[clip_id] for clip_id in ids)
    return {name: counts[name] / len(ids) for name in CLASS_SHARES}


def assert_partition(rows, parts):
    every = [clip_id for part in parts for clip_id in part]
    assert sorted(every) == sorted(row["id"] for row in rows)  # each clip exactly once
    for index, part in enumerate(parts):
        for other in parts[index + 1:]:
            assert not groups_of(rows, part) & groups_of(rows, other)


def test_random_split_is_group_aware_stratified_and_sized():
    rows = manifest()
    split = split_ids(rows, method="random", val=0.1, test=0.2, seed=3)
    assert_partition(rows, [split["train"], split["validation"], split["test"]])
    assert len(split["test"]) / len(rows) == pytest.approx(0.2, abs=0.06)
    assert len(split["validation"]) / len(rows) == pytest.approx(0.1, abs=0.05)
    overall = class_shares(rows, [row["id"] for row in rows])
    for name, share in class_shares(rows, split["test"]).items():
        assert share == pytest.approx(overall[name], abs=0.1)


def test_split_depends_on_seed_only():
    rows = manifest()
    first = split_ids(rows, seed=1)
    assert split_ids(list(reversed(rows)), seed=1) == first
    assert split_ids(rows, seed=2)["test"] != first["test"]


def test_unlabelled_rows_split_by_group():
    rows = manifest(labelled=False)
    split = split_ids(rows, method="random", seed=0)
    assert_partition(rows, [split["train"], split["validation"], split["test"]])
    assert split["test"] and split["validation"]


def test_official_split_is_kept_and_validation_carved_from_train_by_group():
    rows = manifest(with_split=True)
    split = split_ids(rows, method="official", val=0.1, seed=0)
    assert sorted(split["test"]) == sorted(row["id"] for row in rows if row["split"] == "test")
    assert_partition(rows, [split["train"], split["validation"], split["test"]])
    assert 0 < len(split["validation"]) < len(split["train"])
    for row in rows:
        if row["id"] in split["validation"]:
            assert row["split"] == "train"


def test_official_validation_rows_are_used_as_given():
    rows = manifest(with_split=True)
    for row in rows:
        if row["group"] in ("speaker1", "speaker2"):
            row["split"] = "validation"
    split = split_ids(rows, method="official")
    assert groups_of(rows, split["validation"]) == {"speaker1", "speaker2"}


def test_fold_method_tests_on_the_highest_fold():
    rows = manifest(folds=5)
    split = split_ids(rows, method="fold", seed=0)
    assert sorted(split["test"]) == sorted(row["id"] for row in rows if row["fold"] == "5")
    assert_partition(rows, [split["train"], split["validation"], split["test"]])
    chosen = split_ids(rows, method="fold", test_fold=2)
    assert {row["fold"] for row in rows if row["id"] in chosen["test"]} == {"2"}


@pytest.mark.parametrize("labelled", [True, False])
def test_kfold_covers_every_clip_once_and_keeps_groups_whole(labelled):
    rows = manifest(labelled=labelled)
    folds = kfold(rows, k=5, seed=0)
    assert len(folds) == 5
    assert_partition(rows, [test for _, test in folds])
    for train, test in folds:
        assert sorted(train + test) == sorted(row["id"] for row in rows)
        assert not groups_of(rows, train) & groups_of(rows, test)


def test_kfold_is_stratified_and_deterministic():
    rows = manifest(groups=150)
    folds = kfold(rows, k=5, seed=7)
    overall = class_shares(rows, [row["id"] for row in rows])
    for _, test in folds:
        for name, share in class_shares(rows, test).items():
            assert share == pytest.approx(overall[name], abs=0.08)
    assert kfold(list(reversed(rows)), k=5, seed=7) == folds
    assert kfold(rows, k=5, seed=8) != folds


def test_predefined_folds_follow_the_fold_column():
    rows = manifest(folds=4)
    folds = kfold(rows, k=10, predefined=True)
    assert len(folds) == 4
    for number, (train, test) in enumerate(folds, start=1):
        assert sorted(test) == sorted(row["id"] for row in rows if row["fold"] == str(number))
        assert len(train) + len(test) == len(rows)


def test_impossible_requests_fail_with_a_clear_message():
    rows = manifest(groups=3)
    with pytest.raises(CoughclfError, match="at least 5 groups"):
        kfold(rows, k=5)
    with pytest.raises(CoughclfError, match="no fold"):
        kfold(manifest(), predefined=True)
    with pytest.raises(CoughclfError, match="unknown split method"):
        split_ids(manifest(), method="bogus")
    with pytest.raises(CoughclfError, match="test fold 9"):
        split_ids(manifest(folds=5), method="fold", test_fold=9)


def _two_books(first=25, second=23):
    """LJSpeech's part on the shared machines: two books, no labels to stratify by."""
    return [{"id": f"LJ00{book}-{index:04d}", "label": "", "group": f"LJ00{book}", "split": "", "fold": ""}
            for book, count in ((1, first), (2, second)) for index in range(count)]


def test_too_few_groups_for_a_fraction_is_an_error_naming_the_shares_and_the_ways_out():
    with pytest.raises(CoughclfError, match=r'split.test: holding out 5% of 48 clips by group gives 48% \(1 of 2 '
                                            r'groups\).*split.group_by = "none".*explicit folds'):
        split_ids(_two_books(), method="random", val=0.0, test=0.05)


def test_a_clip_level_split_honours_the_fractions_whatever_the_groups():
    rows = _two_books()
    split = split_ids(rows, method="random", val=0.1, test=0.05, group_by=False)
    assert len(split["test"]) / len(rows) == pytest.approx(0.05, abs=0.03)
    assert len(split["validation"]) / len(rows) == pytest.approx(0.1, abs=0.03)
    assert sorted(split["train"] + split["validation"] + split["test"]) == sorted(row["id"] for row in rows)
    folds = kfold(rows, k=4, group_by=False)  # two groups would allow two folds at most
    assert len(folds) == 4 and sorted(clip for _, test in folds for clip in test) == sorted(r["id"] for r in rows)
