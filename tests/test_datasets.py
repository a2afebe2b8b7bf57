"""Dataset loaders on miniature copies of their real layouts, and on the real data in ../shared/data."""

import inspect
import json
import shutil
import time
from collections import Counter

import pytest

import miniatures
from conftest import tone, write_audio
from coughclf import datasets
from coughclf.cli import main
from coughclf.datasets.speech_commands import background_noise_files
from coughclf.errors import CoughclfError


def clips_of(name, data_dir, **options):
    return datasets.get(name).list_clips(data_dir, **options)


def by_id(clips):
    return {clip.id: clip for clip in clips}


# --- registry-wide contracts ------------------------------------------------------------------

EXPECTED = {"coughvid", "covid19_cough", "coswara", "virufy", "speech_commands", "fsdd", "esc50", "esc10",
            "urbansound8k", "ljspeech", "librispeech", "yesno", "folder", "csv"}


def test_every_dataset_is_registered_with_documented_options():
    assert EXPECTED <= set(datasets.available())
    for name in EXPECTED:
        spec = datasets.get(name)
        assert spec.task in ("classification", "ctc")
        assert spec.description and spec.citation and spec.licence and spec.homepage
        keyword_options = [parameter.name for parameter in inspect.signature(spec.list_clips).parameters.values()
                           if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
        assert sorted(keyword_options) == sorted(spec.options), name


WRITERS = {
    "coughvid": miniatures.write_coughvid, "covid19_cough": miniatures.write_covid19_cough,
    "coswara": miniatures.write_coswara, "virufy": miniatures.write_virufy,
    "speech_commands": miniatures.write_speech_commands, "fsdd": miniatures.write_fsdd,
    "esc50": miniatures.write_esc50, "esc10": miniatures.write_esc10,
    "urbansound8k": miniatures.write_urbansound8k, "ljspeech": miniatures.write_ljspeech,
    "librispeech": miniatures.write_librispeech, "yesno": miniatures.write_yesno,
    "folder": miniatures.write_folder, "csv": miniatures.write_csv_manifest,
}


LISTED_WITHOUT_AUDIO = {"ljspeech": ["LJ003-0001"], "coswara": ["20200415/p04/cough-shallow"]}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_clips_are_unique_absolute_existing_and_grouped(tmp_path, name):
    clips = clips_of(name, WRITERS[name](tmp_path / name))
    assert len({clip.id for clip in clips}) == len(clips)
    assert all(clip.path.is_absolute() for clip in clips)
    # Every file on disk, except rows the miniature lists without their audio (prepare reports those).
    assert [clip.id for clip in clips if not clip.path.exists()] == LISTED_WITHOUT_AUDIO.get(name, [])
    assert all(clip.group for clip in clips)
    task = datasets.get(name).task
    assert all((clip.label is not None) == (task == "classification") for clip in clips)
    assert all((clip.transcript is not None) == (task == "ctc") for clip in clips)
    # Metadata columns are the same for every clip, so the manifest has no ragged rows.
    assert len({tuple(clip.metadata) for clip in clips}) == 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_wrong_folder_names_the_expected_layout(tmp_path, name):
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "notes.txt").write_text("nothing here")
    with pytest.raises(CoughclfError) as error:
        clips_of(name, tmp_path / "unrelated")
    message = str(error.value)
    assert str(tmp_path / "unrelated") in message
    assert "\n" not in message


def test_missing_folder_and_unknown_option_are_clear_errors(tmp_path):
    with pytest.raises(CoughclfError, match="does not exist"):
        clips_of("fsdd", tmp_path / "absent")
    root = miniatures.write_fsdd(tmp_path, digits=(1,), takes=(0,))
    with pytest.raises(CoughclfError, match="colour.*not understood.*'fsdd'"):
        clips_of("fsdd", root, colour="red")
    with pytest.raises(CoughclfError, match="classes='three'.*int"):
        clips_of("coughvid", miniatures.write_coughvid(tmp_path / "cv"), classes="three")


# --- cough datasets -----------------------------------------------------------------------------

def test_coughvid_drops_unlabelled_and_low_scores_and_keeps_three_classes(tmp_path):
    root = miniatures.write_coughvid(tmp_path)
    clips = by_id(clips_of("coughvid", root))
    assert sorted(clip_id.split("-", 1)[1] for clip_id in clips) == [
        "covid-a", "covid-b", "healthy-a", "healthy-b", "healthy-c", "sympt-a", "sympt-b"]
    assert Counter(clip.label for clip in clips.values()) == {"COVID-19": 2, "healthy": 3, "symptomatic": 2}
    first = clips["00000000-covid-a"]
    assert first.group == first.id
    assert first.metadata["age"] == "34" and first.metadata["gender"] == "male"
    assert first.metadata["SNR"] == "12.5" and first.metadata["cough_detected"] == "0.99"
    assert "diagnosis_1" not in first.metadata
    # "whichever exists": the uuid written as webm is found as webm, the others as ogg.
    expected_suffix = ".webm" if (root / "public_dataset" / f"{first.id}.webm").exists() else ".ogg"
    assert first.path.suffix == expected_suffix
    assert clips["00000002-healthy-a"].path.suffix == ".ogg"
    # a kept row whose recording is gone is listed (as .webm) for prepare to report
    clips["00000002-healthy-a"].path.unlink()
    again = by_id(clips_of("coughvid", root))
    assert len(again) == 7 and again["00000002-healthy-a"].path.name == "00000002-healthy-a.webm"


def test_coughvid_options_two_classes_threshold_expert_labels_and_cleaning(tmp_path):
    root = miniatures.write_coughvid(tmp_path, snr=False)
    two = clips_of("coughvid", root, classes="2")
    assert Counter(clip.label for clip in two) == {"positive": 2, "negative": 3}
    assert sorted({clip.label for clip in two})[0] == "negative"
    assert len(clips_of("coughvid", root, min_cough_detected=0.3)) == 8
    assert len(clips_of("coughvid", root, min_cough_detected="0.9")) == 5
    expert = by_id(clips_of("coughvid", root, expert_labels="true"))
    assert expert["00000000-covid-a"].metadata["diagnosis_1"] == "COVID-19"
    assert expert["00000001-covid-b"].metadata["severity_4"] == ""
    assert "SNR" not in expert["00000000-covid-a"].metadata
    assert "00000003-healthy-b" not in by_id(clips_of("coughvid", root, drop_gender_other=True))
    # Age 34 occurs 4 times among the kept rows; 51 and 29 once; the row without age is kept.
    kept = by_id(clips_of("coughvid", root, min_age_count=2))
    assert {clip.metadata["age"] for clip in kept.values()} == {"34", ""}
    with pytest.raises(CoughclfError, match="classes=4"):
        clips_of("coughvid", root, classes=4)


def test_coughvid_accepts_the_public_dataset_folder_itself(tmp_path):
    root = miniatures.write_coughvid(tmp_path)
    assert len(clips_of("coughvid", root / "public_dataset")) == 7


def test_covid19_cough_lists_every_file_with_source_metadata(tmp_path):
    clips = by_id(clips_of("covid19_cough", miniatures.write_covid19_cough(tmp_path)))
    assert len(clips) == 5  # the broken file too: prepare reports it
    assert clips["4fc0-broken"].path.stat().st_size == 261
    assert clips["0b8c-pos-call"].label == "positive" and clips["2dae-neg-call"].label == "negative"
    assert clips["0b8c-pos-call"].metadata == {"source": "call-center", "verified": "true", "asymptomatic": "false"}
    assert clips["1c9d-pos-bot"].metadata["verified"] == ""
    assert all(clip.group == clip_id for clip_id, clip in clips.items())


@pytest.mark.parametrize("layout", ["beside", "extracted", "combined"])
def test_coswara_maps_statuses_and_selects_sounds(tmp_path, layout):
    root = miniatures.write_coswara(tmp_path, layout=layout)
    with pytest.warns(UserWarning, match=r"1 participant left out .*recovered_full 1.*keep_all=true"):
        clips = by_id(clips_of("coswara", root))
    assert sorted(clips) == ["20200413/p01/cough-heavy", "20200413/p01/cough-shallow", "20200413/p02/cough-heavy",
                             "20200413/p02/cough-shallow", "20200415/p04/cough-heavy", "20200415/p04/cough-shallow",
                             "20200415/p05/cough-heavy", "20200415/p05/cough-shallow"]
    # p04 recorded no shallow cough: listed all the same, so that prepare reports it
    assert not clips["20200415/p04/cough-shallow"].path.exists()
    assert clips["20200415/p04/cough-heavy"].path.exists()
    if layout != "beside":
        assert clips["20200413/p01/cough-heavy"].path == root / "Extracted_data" / "20200413" / "p01" / \
            "cough-heavy.wav"
    assert clips["20200413/p02/cough-heavy"].label == "positive"
    assert clips["20200415/p04/cough-heavy"].label == "positive"
    assert clips["20200413/p01/cough-heavy"].label == "negative"
    assert clips["20200413/p01/cough-shallow"].group == "p01"
    assert clips["20200413/p02/cough-heavy"].metadata["age"] == "21"
    assert clips["20200413/p02/cough-heavy"].metadata["gender"] == "female"
    with pytest.warns(UserWarning):
        vowels = clips_of("coswara", root, sounds="vowel-a")
    assert [clip.id for clip in vowels if clip.path.exists()] == ["20200413/p01/vowel-a"]
    everyone = by_id(clips_of("coswara", root, sounds="cough-heavy", keep_all="true"))
    assert everyone["20200413/p03/cough-heavy"].label == "recovered_full"


def test_coswara_release_with_its_audio_still_compressed_says_to_extract_it(tmp_path):
    root = miniatures.write_coswara(tmp_path, layout="extracted")
    shutil.rmtree(root / "Extracted_data")
    with pytest.raises(CoughclfError, match=r"still compressed.*20200413.tar.gz.aa.*extract_data.py"):
        clips_of("coswara", root)


def test_prepare_reports_missing_rows_and_a_single_class_cache(tmp_path):
    from coughclf.cache import read_csv
    from coughclf.prepare import format_summary, prepare

    root = miniatures.write_coswara(tmp_path / "coswara", layout="extracted")
    with pytest.warns(UserWarning):
        summary = prepare("coswara", root, tmp_path / "cache", workers=1, progress=False)
    assert summary["clips"] == 7 and summary["missing"] == 1
    assert "1 listed file is missing" in format_summary(summary)
    (row,) = read_csv(tmp_path / "cache" / "skipped.csv")
    assert row["path"] == "Extracted_data/20200415/p04/cough-shallow.wav" and row["reason"] == "file not found"
    negatives_only = [participant for participant in miniatures.COSWARA_PARTICIPANTS if participant[2] == "healthy"]
    root = miniatures.write_coswara(tmp_path / "healthy", participants=negatives_only)
    with pytest.warns(UserWarning, match=r"only one class \(negative\)"):
        prepare("coswara", root, tmp_path / "cache2", workers=1, progress=False)


def test_virufy_lists_segments_with_patient_groups(tmp_path):
    root = miniatures.write_virufy(tmp_path)
    clips = clips_of("virufy", root)
    assert len(clips) == 7
    assert Counter(clip.label for clip in clips) == {"negative": 3, "positive": 4}
    assert {clip.group for clip in clips} == {"083", "084", "086"}
    segment = by_id(clips)["pos/pos-0421-084-cough-m-50-1"]
    assert segment.metadata["recording"] == "pos-0421-084-cough-m-50"
    assert segment.metadata["age"] == "50" and segment.metadata["gender"] == "male"
    original = clips_of("virufy", root / "virufy-data-main", audio="original")
    assert len(original) == 3 and all(clip.path.parent.parent.name == "original" for clip in original)
    # the clinical/ folder itself, as a user who cloned the repository would point at it
    assert by_id(clips_of("virufy", root / "virufy-data-main" / "clinical")) == by_id(clips)
    with pytest.raises(CoughclfError, match="clinical/manual not found"):
        clips_of("virufy", root, audio="manual")


def test_virufy_segment_without_labels_row_takes_its_file_name_prefix(tmp_path):
    root = miniatures.write_virufy(tmp_path)
    write_audio(root / "virufy-data-main" / "clinical" / "segmented" / "pos"
                           / "pos-0422-096-cough-m-31_4.wav", tone(0.1))
    clip = by_id(clips_of("virufy", root))["pos/pos-0422-096-cough-m-31_4"]
    assert (clip.label, clip.group, clip.metadata["age"]) == ("positive", "096", "")


# --- keyword spotting and sound events -----------------------------------------------------------

def test_speech_commands_splits_groups_words_and_noise(tmp_path):
    release = miniatures.write_speech_commands(tmp_path)
    for data_dir in (tmp_path, release):  # the release folder or its parent
        clips = clips_of("speech_commands", data_dir)
        assert len(clips) == 4 * 3 * 2
    by_split = Counter((clip.group, clip.split) for clip in clips)
    assert by_split == {("0a1b2c3d", "train"): 8, ("1b2c3d4e", "validation"): 8, ("2c3d4e5f", "test"): 8}
    assert {clip.label for clip in clips} == {"yes", "no", "zero", "one"}
    assert "_background_noise_" not in {clip.label for clip in clips}
    subset = clips_of("speech_commands", tmp_path, words="yes, no")
    assert {clip.label for clip in subset} == {"yes", "no"}
    with pytest.raises(CoughclfError, match="two"):
        clips_of("speech_commands", tmp_path, words="digits")
    noise = background_noise_files(tmp_path)
    assert [path.name for path in noise] == ["noise_0.wav", "noise_1.wav"]


def test_speech_commands_digits_option(tmp_path):
    miniatures.write_speech_commands(tmp_path, words=("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                      "eight", "nine", "bed"), takes=1, noise_files=0)
    clips = clips_of("speech_commands", tmp_path, words="digits")
    assert sorted({clip.label for clip in clips}) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    assert background_noise_files(tmp_path) == []


def test_fsdd_official_split_and_speaker_folds(tmp_path):
    root = miniatures.write_fsdd(tmp_path, takes=range(7))
    clips = clips_of("fsdd", root)
    assert len(clips) == 10 * 3 * 7
    assert Counter(clip.split for clip in clips) == {"test": 10 * 3 * 5, "validation": 10 * 3 * 2}
    assert {clip.group: clip.fold for clip in clips} == {"jackson": 1, "nicolas": 2, "theo": 3}
    clip = by_id(clips)["7_theo_6"]
    assert (clip.label, clip.group, clip.split) == ("7", "theo", "validation")
    assert clip.metadata["accent"] == "USA/neutral"
    assert len(clips_of("fsdd", root / "recordings")) == len(clips)


def test_esc50_folds_groups_and_esc10_subset(tmp_path):
    root = miniatures.write_esc50(tmp_path)
    clips = clips_of("esc50", root)
    assert len(clips) == 4 * 5 * 2
    assert Counter(clip.fold for clip in clips) == {fold: 8 for fold in range(1, 6)}
    clip = by_id(clips)["3-103030-B-3"]
    assert (clip.label, clip.fold, clip.group) == ("cow", 3, "103030.wav")
    # Both takes of one source recording share a group.
    assert Counter(clip.group for clip in clips).most_common(1)[0][1] == 2
    esc10 = clips_of("esc50", root, esc10="true")
    assert {clip.label for clip in esc10} == {"dog", "rooster"} and len(esc10) == 20


def test_esc10_standalone_release(tmp_path):
    clips = clips_of("esc10", miniatures.write_esc10(tmp_path / "ESC-10"))
    assert len(clips) == 15
    clip = by_id(clips)["002/4-200104-A"]
    assert (clip.label, clip.fold, clip.group) == ("Rain", 4, "200104")
    assert len(clips_of("esc10", tmp_path)) == 15  # the parent folder works too


def test_urbansound8k_ten_folds(tmp_path):
    clips = clips_of("urbansound8k", miniatures.write_urbansound8k(tmp_path))
    assert len(clips) == 3 * 10 * 2
    assert sorted({clip.fold for clip in clips}) == list(range(1, 11))
    clip = by_id(clips)["300107-1-0-1"]
    assert (clip.label, clip.fold, clip.group) == ("car_horn", 7, "300107")
    assert clip.path.parent.name == "fold7"


# --- speech corpora --------------------------------------------------------------------------------

def test_ljspeech_keeps_quotes_and_uses_normalized_text(tmp_path):
    clips = by_id(clips_of("ljspeech", miniatures.write_ljspeech(tmp_path)))
    # the row without its wav is listed too, so that prepare reports it
    assert sorted(clips) == ["LJ001-0001", "LJ001-0002", "LJ002-0001", "LJ003-0001"]
    assert not clips["LJ003-0001"].path.exists() and clips["LJ003-0001"].path.name == "LJ003-0001.wav"
    assert clips["LJ001-0002"].transcript == 'He said "No. two" to Mister Smith'
    assert clips["LJ001-0002"].metadata["text"] == 'He said "No. 2" to Mr. Smith'
    assert clips["LJ002-0001"].group == "LJ002"


def test_librispeech_root_or_one_subset(tmp_path):
    root = miniatures.write_librispeech(tmp_path)
    clips = clips_of("librispeech", root)
    assert len(clips) == 3 * 2 * 2
    assert Counter(clip.split for clip in clips) == {"train": 4, "validation": 4, "test": 4}
    clip = by_id(clips)["284-198-0001"]
    assert (clip.group, clip.split, clip.transcript) == ("284", "validation", "CHAPTER ONE THE DAY")
    dev = clips_of("librispeech", root / "LibriSpeech" / "dev-clean")
    assert {clip.metadata["subset"] for clip in dev} == {"dev-clean"} and len(dev) == 4
    # a transcript line whose audio is absent is listed for prepare to report
    clip.path.unlink()
    listed = by_id(clips_of("librispeech", root))
    assert len(listed) == 12 and not listed["284-198-0001"].path.exists()


def test_every_listed_row_whose_audio_is_missing_is_reported_by_prepare(tmp_path):
    from coughclf.cache import read_csv
    from coughclf.prepare import prepare

    root = miniatures.write_ljspeech(tmp_path / "lj", ids=tuple(f"LJ001-{index:04d}" for index in range(1, 4)))
    metadata = root / "LJSpeech-1.1" / "metadata.csv"
    metadata.write_text(metadata.read_text() + "".join(f"LJ050-{index:04d}|Text {index}|Text {index}\n"
                                                       for index in range(40)))
    summary = prepare("ljspeech", root, tmp_path / "cache", workers=1, progress=False)
    assert (summary["clips"], summary["skipped"], summary["missing"]) == (3, 41, 41)
    assert {row["reason"] for row in read_csv(tmp_path / "cache" / "skipped.csv")} == {"file not found"}
    (root / "LJSpeech-1.1" / "wavs").rename(root / "elsewhere")
    with pytest.raises(CoughclfError, match=r"44 listed, none of them on disk"):
        clips_of("ljspeech", root)


def test_yesno_transcripts_and_half_split(tmp_path):
    clips = clips_of("yesno", miniatures.write_yesno(tmp_path, count=8))
    assert [clip.split for clip in clips] == ["train"] * 4 + ["test"] * 4
    assert [clip.id for clip in clips] == sorted(clip.id for clip in clips)
    for clip in clips:
        bits = clip.id.split("_")
        assert clip.transcript.split() == ["yes" if bit == "1" else "no" for bit in bits]


# --- generic layouts ----------------------------------------------------------------------------------

def test_folder_per_class_with_group_pattern(tmp_path):
    root = miniatures.write_folder(tmp_path)
    clips = clips_of("folder", root)
    assert Counter(clip.label for clip in clips) == {"dry": 5, "wet": 5}
    assert by_id(clips)["wet/session2/ann_2.flac"].group == "ann_2"
    grouped = clips_of("folder", root, group_pattern="^([a-z]+)_")
    assert {clip.group for clip in grouped} == {"ann", "bob"}
    with pytest.raises(CoughclfError, match="does not match"):
        clips_of("folder", root, group_pattern="^(bob)_")
    with pytest.raises(CoughclfError, match="exactly one"):
        clips_of("folder", root, group_pattern="([a-z]+)_([0-9])")


def test_csv_manifest_fields_and_metadata(tmp_path):
    root = miniatures.write_csv_manifest(tmp_path / "data")
    clips = clips_of("csv", root)
    clip = by_id(clips)["clips/wet_5.wav"]
    assert (clip.label, clip.group, clip.fold, clip.split) == ("wet", "subject2", 3, "test")
    assert clip.metadata == {"device": "studio"} and clip.transcript is None
    moved = tmp_path / "elsewhere.csv"
    moved.write_text((root / "manifest.csv").read_text())
    assert len(clips_of("csv", root, manifest=str(moved))) == 6
    (root / "manifest.csv").write_text("path,label,fold\nclips/dry_0.wav,dry,first\n")
    with pytest.raises(CoughclfError, match="line 2: fold 'first'"):
        clips_of("csv", root)


# --- the real data in ../shared/data --------------------------------------------------------------

def test_real_data_lists_completely(shared_data):
    fsdd = clips_of("fsdd", shared_data / "fsdd")
    assert len(fsdd) == 3000 and len({clip.group for clip in fsdd}) == 6
    assert Counter(clip.split for clip in fsdd) == {"test": 300, "validation": 300, "train": 2400}
    commands = clips_of("speech_commands", shared_data / "speech_commands_sample")
    assert len(commands) == 300 and len({clip.label for clip in commands}) == 30
    assert len(clips_of("speech_commands", shared_data / "speech_commands_sample" / "speech_commands_v0.01")) == 300
    coughs = clips_of("covid19_cough", shared_data / "covid19_cough")
    assert len(coughs) == 1324
    assert Counter(clip.label for clip in coughs) == {"positive": 682, "negative": 642}
    assert sum(clip.path.stat().st_size == 261 for clip in coughs) == 2
    yesno = clips_of("yesno", shared_data / "yesno")
    assert len(yesno) == 60 and all(len(clip.transcript.split()) == 8 for clip in yesno)


def test_listing_fsdd_is_fast(shared_data):
    start = time.perf_counter()
    clips_of("fsdd", shared_data / "fsdd")
    assert time.perf_counter() - start < 1.0


# --- the datasets command ---------------------------------------------------------------------------

def test_datasets_command_lists_everything_as_json(capsys):
    assert main(["datasets", "--json"]) == 0
    entries = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert EXPECTED <= set(entries)
    assert entries["coughvid"]["download"] and not entries["urbansound8k"]["download"]
    assert "classes" in entries["coughvid"]["options"]
    assert entries["esc50"]["licence"] == "CC BY-NC 3.0"
    assert {name for name, entry in entries.items() if entry["download"]} >= {
        "coughvid", "speech_commands", "esc50", "fsdd", "ljspeech", "yesno"}


def test_datasets_command_text_and_unknown_name(capsys):
    assert main(["datasets", "yesno"]) == 0
    out = capsys.readouterr().out
    assert "yesno" in out and "Apache 2.0" in out and "coughclf download" in out
    assert main(["datasets", "nosuch"]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
