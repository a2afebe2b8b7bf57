"""Miniature copies of each dataset's real layout, written by tests into a folder.

Every ``write_<dataset>(root, ...)`` creates the files a loader expects (same names, same table
columns, same quirks) with short, decodable audio, and returns the folder to pass as
``--data-dir``. Recordings of different classes differ in pitch, so small models can learn them.
Used by tests/test_datasets.py and by other tests that need a dataset on disk
(``from miniatures import write_fsdd``).
"""

import csv
import json
import shutil
import subprocess
from pathlib import Path

from conftest import tone, write_audio

SECONDS = 0.25


def _clip(path, class_index=0, seed=0, sample_rate=16000, seconds=SECONDS):
    """A short tone whose pitch depends on the class, with seed-dependent noise."""
    return write_audio(path, tone(seconds=seconds, sample_rate=sample_rate, frequency=220.0 + 110.0 * class_index,
                                  seed=seed), sample_rate)


def _write_csv(path, header, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_fsdd(root, speakers=("jackson", "nicolas", "theo"), digits=range(10), takes=range(7), sample_rate=8000,
               speakers_csv=True):
    """``recordings/{digit}_{speaker}_{take}.wav`` (+ ``speakers.csv``); takes 0-4 are the official test split."""
    root = Path(root)
    for digit in digits:
        for speaker_index, speaker in enumerate(speakers):
            for take in takes:
                _clip(root / "recordings" / f"{digit}_{speaker}_{take}.wav", digit,
                      seed=digit * 1000 + speaker_index * 100 + take, sample_rate=sample_rate)
    if speakers_csv:
        _write_csv(root / "speakers.csv", ["speaker", "gender", "accent", "language"],
                   [[speaker, "male", "USA/neutral", "english"] for speaker in speakers])
    return root


def write_speech_commands(root, words=("yes", "no", "zero", "one"), speakers=("0a1b2c3d", "1b2c3d4e", "2c3d4e5f"),
                          takes=2, release="speech_commands_v0.02", noise_files=2):
    """``{release}/{word}/{speaker}_nohash_{n}.wav`` with official-style lists and ``_background_noise_``.

    The second speaker is listed for validation and the third for testing; both lists also name
    files that do not exist, like the full lists beside a partial copy.
    """
    folder = Path(root) / release
    validation, testing = [], []
    for word_index, word in enumerate(words):
        for speaker_index, speaker in enumerate(speakers):
            for take in range(takes):
                name = f"{word}/{speaker}_nohash_{take}.wav"
                _clip(folder / name, word_index, seed=word_index * 100 + speaker_index * 10 + take)
                if speaker_index == 1:
                    validation.append(name)
                elif speaker_index == 2:
                    testing.append(name)
    validation.append(f"{words[0]}/ffffffff_nohash_0.wav")
    testing.append("missing/eeeeeeee_nohash_0.wav")
    (folder / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(testing) + "\n")
    if noise_files:
        for index in range(noise_files):
            _clip(folder / "_background_noise_" / f"noise_{index}.wav", 9, seed=900 + index, seconds=1.0)
        (folder / "_background_noise_" / "README.md").write_text("noise recordings\n")
    return folder


def write_yesno(root, count=8):
    """``waves_yesno/{b1}_..._{b8}.wav`` for ``count`` distinct bit patterns."""
    folder = Path(root) / "waves_yesno"
    for index in range(count):
        bits = format(index * 37 % 256, "08b")
        _clip(folder / f"{'_'.join(bits)}.wav", bits.count("1"), seed=index, sample_rate=8000)
    return Path(root)


def write_ljspeech(root, ids=("LJ001-0001", "LJ001-0002", "LJ002-0001"), missing_wav="LJ003-0001"):
    """``LJSpeech-1.1/metadata.csv`` (id|text|normalized, texts with quotes) and ``wavs/``; one row lacks its wav."""
    folder = Path(root) / "LJSpeech-1.1"
    lines = []
    for index, clip_id in enumerate(ids):
        _clip(folder / "wavs" / f"{clip_id}.wav", index, seed=index, sample_rate=22050)
        lines.append(f'{clip_id}|He said "No. {index + 1}" to Mr. Smith|He said "No. {_number(index + 1)}" '
                     "to Mister Smith")
    lines.append(f"{missing_wav}|Printing, in the only sense|Printing, in the only sense")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(root)


def _number(value):
    return ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")[value % 10]


def write_librispeech(root, subsets=("train-clean-100", "dev-clean", "test-clean"), speakers=("19", "84"),
                      chapters=("198",), utterances=2):
    """``LibriSpeech/{subset}/{speaker}/{chapter}/{speaker}-{chapter}-{utt:04d}.flac`` + ``.trans.txt``.

    Speakers are made unique per subset (as in the real corpus) by prefixing the subset index.
    """
    base = Path(root) / "LibriSpeech"
    for subset_index, subset in enumerate(subsets):
        for speaker in speakers:
            speaker_id = f"{subset_index + 1}{speaker}"
            for chapter in chapters:
                folder = base / subset / speaker_id / chapter
                lines = []
                for utt in range(utterances):
                    utterance = f"{speaker_id}-{chapter}-{utt:04d}"
                    _clip(folder / f"{utterance}.flac", utt, seed=int(speaker_id) + utt)
                    lines.append(f"{utterance} CHAPTER {_number(utt).upper()} THE DAY")
                (folder / f"{speaker_id}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return Path(root)


ESC_CLASSES = (("dog", 0, True), ("rooster", 1, True), ("pig", 2, False), ("cow", 3, False))


def write_esc50(root, classes=ESC_CLASSES, folds=5, clips_per_fold=1, sample_rate=16000):
    """``ESC-50-master/audio/{fold}-{src}-{take}-{target}.wav`` + ``meta/esc50.csv``.

    ``classes`` holds (category, target, in_esc10). Each source recording yields two takes
    (A and B) in the same fold, as in the real set.
    """
    folder = Path(root) / "ESC-50-master"
    rows = []
    for category, target, in_esc10 in classes:
        for fold in range(1, folds + 1):
            for clip in range(clips_per_fold):
                source = 100000 + target * 1000 + fold * 10 + clip
                for take in ("A", "B"):
                    name = f"{fold}-{source}-{take}-{target}.wav"
                    _clip(folder / "audio" / name, target, seed=source + ord(take), sample_rate=sample_rate)
                    rows.append([name, fold, target, category, str(in_esc10), f"{source}.wav", take])
    _write_csv(folder / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"],
               rows)
    return Path(root)


def write_esc10(root, classes=("Dog bark", "Rain", "Sea waves"), folds=5):
    """The standalone ESC-10 release: ``'{NNN} - {Class name}/{fold}-{freesound_id}-{take}.ogg'``."""
    root = Path(root)
    for class_index, name in enumerate(classes):
        folder = root / f"{class_index + 1:03d} - {name}"
        for fold in range(1, folds + 1):
            source = 200000 + class_index * 100 + fold
            _clip(folder / f"{fold}-{source}-A.ogg", class_index, seed=source)
    return root


US8K_CLASSES = ("air_conditioner", "car_horn", "children_playing")


def write_urbansound8k(root, classes=US8K_CLASSES, folds=10):
    """``UrbanSound8K/audio/fold{n}/{fsID}-{classID}-0-{k}.wav`` + ``metadata/UrbanSound8K.csv``."""
    folder = Path(root) / "UrbanSound8K"
    rows = []
    for class_id, name in enumerate(classes):
        for fold in range(1, folds + 1):
            fs_id = 300000 + class_id * 100 + fold
            for occurrence in range(2):
                file_name = f"{fs_id}-{class_id}-0-{occurrence}.wav"
                _clip(folder / "audio" / f"fold{fold}" / file_name, class_id, seed=fs_id + occurrence)
                rows.append([file_name, fs_id, occurrence * 0.5, occurrence * 0.5 + SECONDS, 1, fold, class_id, name])
    _write_csv(folder / "metadata" / "UrbanSound8K.csv",
               ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], rows)
    return Path(root)


COUGHVID_EXPERT_FIELDS = ("quality", "cough_type", "dyspnea", "wheezing", "stridor", "choking", "congestion",
                          "nothing", "diagnosis", "severity")

# uuid suffix, cough_detected, age, gender, status (the rows a test checks the filters against)
COUGHVID_ROWS = (
    ("covid-a", "0.99", "34", "male", "COVID-19"),
    ("covid-b", "0.91", "34", "female", "COVID-19"),
    ("healthy-a", "0.97", "34", "female", "healthy"),
    ("healthy-b", "0.85", "51", "other", "healthy"),
    ("healthy-c", "0.95", "", "male", "healthy"),
    ("sympt-a", "0.93", "34", "male", "symptomatic"),
    ("sympt-b", "0.82", "29", "female", "symptomatic"),
    ("lowscore", "0.31", "34", "male", "healthy"),
    ("nostatus", "0.99", "40", "male", ""),
)


def write_coughvid(root, rows=COUGHVID_ROWS, snr=True, webm=("covid-a",)):
    """``public_dataset/metadata_compiled.csv`` + ``{uuid}.webm|.ogg`` + ``{uuid}.json``.

    The CSV starts with an unnamed index column like the real one; ``snr`` adds the SNR column
    of the later releases; uuids in ``webm`` are written as webm (with ffmpeg, when installed),
    the others as ogg. The first row carries expert labels, the others leave them empty.
    """
    folder = Path(root) / "public_dataset"
    folder.mkdir(parents=True, exist_ok=True)
    classes = {"COVID-19": 0, "healthy": 1, "symptomatic": 2, "": 3}
    expert_columns = [f"{field}_{expert}" for expert in range(1, 5) for field in COUGHVID_EXPERT_FIELDS]
    header = (["", "uuid", "datetime", "cough_detected"] + (["SNR"] if snr else [])
              + ["latitude", "longitude", "age", "gender", "respiratory_condition", "fever_muscle_pain", "status",
                 "status_SSL"] + expert_columns)
    table = []
    for index, (suffix, score, age, gender, status) in enumerate(rows):
        uuid = f"{index:08d}-{suffix}"
        ogg = _clip(folder / f"{uuid}.ogg", classes[status], seed=index, sample_rate=48000)
        if suffix in webm and shutil.which("ffmpeg"):
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(ogg), "-c:a", "libopus",
                            str(folder / f"{uuid}.webm")], check=True)
            ogg.unlink()
        (folder / f"{uuid}.json").write_text(json.dumps({"status": status}))
        experts = (["good", "dry", "False", "False", "False", "False", "False", "False", "COVID-19", "mild"]
                   if index == 0 else [""] * len(COUGHVID_EXPERT_FIELDS)) + [""] * (len(expert_columns) - 10)
        table.append([index, uuid, "2020-04-13T21:30:59.801831+00:00", score] + (["12.5"] if snr else [])
                     + ["", "", age, gender, "False", "False", status, ""] + experts)
    _write_csv(folder / "metadata_compiled.csv", header, table)
    return Path(root)


COVID19_COUGH_ROWS = (
    # uuid, covid19, verified, asymptomatic, source
    ("0b8c-pos-call", True, True, False, "call-center"),
    ("1c9d-pos-bot", True, None, None, "telegram"),
    ("2dae-neg-call", False, None, None, "call-center"),
    ("3ebf-neg-bot", False, None, True, "telegram"),
)


def write_covid19_cough(root, rows=COVID19_COUGH_ROWS, broken=("4fc0-broken",)):
    """``raw/{uuid}.mp3`` + ``metadata.json``; uuids in ``broken`` get a 261-byte file holding no audio."""
    root = Path(root)
    records = []
    for index, (uuid, covid19, verified, asymptomatic, source) in enumerate(rows):
        _clip(root / "raw" / f"{uuid}.mp3", int(covid19), seed=index, sample_rate=8000 if source == "call-center"
              else 48000)
        records.append({"filename": f"{uuid}.mp3", "covid19": covid19, "verified": verified,
                        "asymptomatic": asymptomatic, "source": source, "comment": None})
    for uuid in broken:
        (root / "raw" / f"{uuid}.mp3").write_bytes(b"ID3" + bytes(258))
        records.append({"filename": f"{uuid}.mp3", "covid19": False, "verified": None, "asymptomatic": None,
                        "source": "telegram", "comment": None})
    (root / "metadata.json").write_text(json.dumps(records, indent=1))
    return root


COSWARA_PARTICIPANTS = (
    # date, id, covid_status, sounds recorded
    ("20200413", "p01", "healthy", ("cough-heavy", "cough-shallow", "vowel-a")),
    ("20200413", "p02", "positive_mild", ("cough-heavy", "cough-shallow")),
    ("20200413", "p03", "recovered_full", ("cough-heavy",)),
    ("20200415", "p04", "positive_asymp", ("cough-heavy",)),
    ("20200415", "p05", "healthy", ("cough-heavy", "cough-shallow")),
)


def write_coswara(root, participants=COSWARA_PARTICIPANTS, layout="beside"):
    """Coswara's tables (id, a, covid_status, ep, g, ...) and ``{sound}.wav`` per participant.

    ``layout``: ``"beside"`` puts the audio at ``{date}/{id}/`` next to ``{date}/{date}.csv``;
    ``"extracted"`` is the release as its extract_data.py leaves it: ``{date}/{date}.csv`` beside the
    compressed parts ``{date}/{date}.tar.gz.aa``, audio at ``Extracted_data/{date}/{id}/``;
    ``"combined"`` adds the newer releases' root ``combined_data.csv`` (with ``record_date`` written
    2020-04-13) and keeps no date tables.
    """
    root = Path(root)
    audio_base = root / "Extracted_data" if layout in ("extracted", "combined") else root
    rows_by_date = {}
    header = ["id", "a", "covid_status", "ep", "g", "l_c", "l_s"]
    for index, (date, participant, status, sounds) in enumerate(participants):
        for sound in sounds:
            _clip(audio_base / date / participant / f"{sound}.wav", int(status.startswith("positive")), seed=index,
                  sample_rate=44100)
        rows_by_date.setdefault(date, []).append([participant, 20 + index, status, "y", "female" if index % 2 else
                                                  "male", "India", "KA"])
    if layout == "combined":
        _write_csv(root / "combined_data.csv", header + ["record_date"],
                   [row + [f"{date[:4]}-{date[4:6]}-{date[6:]}"] for date, rows in rows_by_date.items()
                    for row in rows])
        return root
    for date, rows in rows_by_date.items():
        _write_csv(root / date / f"{date}.csv", header, rows)
        if layout == "extracted":
            (root / date / f"{date}.tar.gz.aa").write_bytes(b"\x1f\x8b compressed part")
    return root


VIRUFY_RECORDINGS = (
    # recording stem, corona_test, segments
    ("neg-0421-083-cough-m-53", "negative", 3),
    ("pos-0421-084-cough-m-50", "positive", 2),
    ("pos-0421-086-cough-m-65", "positive", 2),
)


def write_virufy(root, recordings=VIRUFY_RECORDINGS):
    """virufy-data: ``clinical/labels.csv``, ``clinical/original/{neg,pos}/{recording}.mp3`` and
    ``clinical/segmented/{neg,pos}/{recording}-{k}.mp3``."""
    clinical = Path(root) / "virufy-data-main" / "clinical"
    rows = []
    for index, (recording, result, segments) in enumerate(recordings):
        label_folder = recording[:3]
        _clip(clinical / "original" / label_folder / f"{recording}.mp3", int(result == "positive"), seed=index,
              seconds=1.0, sample_rate=48000)
        for segment in range(segments):
            _clip(clinical / "segmented" / label_folder / f"{recording}-{segment}.mp3", int(result == "positive"),
                  seed=index * 10 + segment, sample_rate=48000)
        gender = "male" if "-m-" in recording else "female"
        rows.append(["2020-04-21", f"{recording}.mp3", result, recording.rsplit("-", 1)[1], gender, "none,", "no",
                     "none,"])
    _write_csv(clinical / "labels.csv", ["date", "cough_filename", "corona_test", "age", "gender", "medical_history",
                                          "smoker", "patient_reported_symptoms"], rows)
    return Path(root)


def write_folder(root, classes=("dry", "wet"), speakers=("ann", "bob"), takes=2):
    """``{class}/{speaker}_{take}.wav`` plus one file a level deeper, for the generic folder layout."""
    root = Path(root)
    for class_index, name in enumerate(classes):
        for speaker_index, speaker in enumerate(speakers):
            for take in range(takes):
                _clip(root / name / f"{speaker}_{take}.wav", class_index, seed=class_index * 100 + speaker_index * 10
                      + take)
        _clip(root / name / "session2" / f"{speakers[0]}_{takes}.flac", class_index, seed=class_index + 50)
    return root


def write_csv_manifest(root, name="manifest.csv"):
    """Audio under ``clips/`` and a manifest with path,label,group,fold,split,transcript and a metadata column."""
    root = Path(root)
    rows = []
    for index in range(6):
        label = "wet" if index % 2 else "dry"
        path = f"clips/{label}_{index}.wav"
        _clip(root / path, index % 2, seed=index)
        rows.append([path, label, f"subject{index // 2}", index % 3 + 1, "test" if index >= 4 else "train",
                     "", "phone" if index < 3 else "studio"])
    _write_csv(root / name, ["path", "label", "group", "fold", "split", "transcript", "device"], rows)
    return root
