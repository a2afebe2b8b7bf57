"""[[data.extra_train]]: clips of another corpus join the cache and train in every split, never test."""

import pytest

from coughclf.config import load_config
from coughclf.cv import fold_splits
from coughclf.errors import CoughclfError
from coughclf.inputs import open_data, split_clips
from miniatures import write_fsdd, write_speech_commands

DIGIT_LABELS = '{ zero = "0", one = "1" }'


def write_config(tmp_path, *, words="zero,one", labels=DIGIT_LABELS, split='method = "fold"\nval = 0.0',
                 entry_extra=""):
    fsdd = write_fsdd(tmp_path / "fsdd", digits=(0, 1), takes=range(6))
    commands = write_speech_commands(tmp_path / "sc", words=("zero", "one", "yes"), noise_files=0)
    path = tmp_path / "extra.toml"
    path.write_text(f"""
[data]
dataset = "fsdd"
data_dir = "{fsdd}"
cache = "{tmp_path / 'cache'}"
clip_seconds = 0.25

[[data.extra_train]]
dataset = "speech_commands"
data_dir = "{commands}"
options = {{ words = "{words}" }}
labels = {labels}
{entry_extra}

[split]
{split}

[model]
name = "kws_cnn"
""")
    return path


def test_extra_clips_train_in_every_fold_and_are_never_tested(tmp_path):
    config = load_config(write_config(tmp_path))
    cache = open_data(config)
    rows = {row["id"]: row for row in cache.manifest}
    extra = sorted(clip_id for clip_id in rows if clip_id.startswith("speech_commands/"))
    assert len(extra) == 2 * 3 * 2  # two words, three speakers, two takes
    assert {rows[clip_id]["label"] for clip_id in extra} == {"0", "1"}
    assert {row["meta_corpus"] for row in rows.values()} == {"fsdd", "speech_commands"}
    assert all(rows[clip_id]["group"].startswith("speech_commands/") for clip_id in extra)

    folds = fold_splits(config, cache)
    assert len(folds) == 3  # one per FSDD speaker: the extra corpus adds no fold
    tested = [clip_id for fold in folds for clip_id in fold["test"]]
    assert len(tested) == len(set(tested)) == 3 * 2 * 6  # every FSDD clip tested once
    for fold in folds:
        assert {rows[clip_id]["group"] for clip_id in fold["test"]} < {"jackson", "nicolas", "theo"}
        assert sorted(set(fold["train"]) & set(extra)) == extra


def test_official_split_keeps_its_test_takes_and_adds_extra_clips_to_training(tmp_path):
    config = load_config(write_config(tmp_path, split='method = "official"'))
    cache = open_data(config)
    parts = split_clips(config, cache)
    extra = {row["id"] for row in cache.manifest if row["meta_corpus"] == "speech_commands"}
    assert extra <= set(parts["train"])
    assert not extra & (set(parts["validation"]) | set(parts["test"]))
    assert len(parts["test"]) == 3 * 2 * 5  # FSDD takes 0-4


def test_an_extra_label_that_is_no_main_class_names_itself(tmp_path):
    config = load_config(write_config(tmp_path, words="zero,one,yes"))
    with pytest.raises(CoughclfError, match=r"label 'yes' .* is not a class of fsdd"):
        open_data(config)


@pytest.mark.parametrize("entry_extra, message", [
    ('weight = 2', r"data\.extra_train\[0\]: unknown key 'weight'"),
    ('dataset = "speech_comands"', r"data\.extra_train\[0\]\.dataset = 'speech_comands' is not a known"),
])
def test_malformed_extra_entries_fail_before_training(tmp_path, entry_extra, message):
    path = write_config(tmp_path, entry_extra=entry_extra)
    text = path.read_text()
    if entry_extra.startswith("dataset"):  # a second dataset key would be invalid TOML: replace the first
        text = text.replace('dataset = "speech_commands"\n', "", 1)
    path.write_text(text)
    with pytest.raises(CoughclfError, match=message):
        load_config(path)


def test_a_missing_extra_folder_is_named_when_the_data_is_opened_not_when_the_config_is_read(tmp_path):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace(str(tmp_path / "sc"), str(tmp_path / "nowhere")))
    config = load_config(path)  # valid on a machine without the data
    with pytest.raises(CoughclfError, match=r"data\.extra_train\[0\]\.data_dir = .*nowhere.* is not a folder"):
        open_data(config)
