"""CTC training and evaluation (coughclf.speech), the digit_sequences corpus and the speech configs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import tone, write_audio
from miniatures import write_fsdd, write_librispeech, write_ljspeech, write_yesno

from coughclf import datasets
from coughclf.config import config_from_dict, load_config
from coughclf.errors import CoughclfError
from coughclf.text import DIGIT_WORDS, normalize

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments" / "speech"
TINY_MODEL = {"name": "deepspeech2_lite", "conv_filters": 8, "conv_kernel": 5, "rnn_units": 8, "rnn_layers": 2,
              "activation": "tanh"}
TINY_FRONTEND = {"n_fft": 256, "win_length": 200, "hop_length": 80, "n_mels": 16}


# --- digit_sequences ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fsdd_folder(tmp_path_factory):
    # Takes 0-4 are FSDD's test takes, 5-9 validation, 10-11 train.
    return write_fsdd(tmp_path_factory.mktemp("fsdd"), takes=range(12))


def _sequences(fsdd, audio_dir, **options):
    return datasets.get("digit_sequences").list_clips(fsdd, audio_dir=str(audio_dir), **options)


def _takes(clip):
    return {recording: int(recording.split("_")[2]) for recording in clip.metadata["recordings"].split()}


def test_digit_sequences_hold_out_recordings(fsdd_folder, tmp_path):
    clips = _sequences(fsdd_folder, tmp_path, count=40, seed=1, min_digits=3, max_digits=7)
    by_split = {split: [c for c in clips if c.split == split] for split in ("train", "validation", "test")}
    assert [len(by_split[s]) for s in ("train", "validation", "test")] == [7, 17, 17]  # pools of 2, 5, 5 takes
    heard = {split: set().union(*(_takes(c) for c in members)) for split, members in by_split.items()}
    assert not heard["test"] & heard["train"] and not heard["test"] & heard["validation"]
    assert all(take < 5 for c in by_split["test"] for take in _takes(c).values())
    for clip in clips:
        recordings = clip.metadata["recordings"].split()
        assert 3 <= len(recordings) <= 7
        assert clip.transcript == " ".join(DIGIT_WORDS[int(r.split("_")[0])] for r in recordings)
        assert {r.split("_")[1] for r in recordings} == {clip.metadata["speaker"]}  # one speaker per utterance
        audio, rate = soundfile.read(clip.path)
        speech = sum(soundfile.info(str(fsdd_folder / "recordings" / f"{r}.wav")).frames for r in recordings)
        gaps = len(audio) - speech
        assert rate == 8000 and 0.05 * 8000 * (len(recordings) + 1) - 8 <= gaps <= 0.25 * 8000 * (len(recordings) + 1) + 8


def test_digit_sequences_are_deterministic_under_the_seed(fsdd_folder, tmp_path):
    first = _sequences(fsdd_folder, tmp_path / "a", count=12, seed=3)
    second = _sequences(fsdd_folder, tmp_path / "b", count=12, seed=3)
    other = _sequences(fsdd_folder, tmp_path / "c", count=12, seed=4)
    assert [c.transcript for c in first] == [c.transcript for c in second]
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(first, second))
    assert [c.transcript for c in first] != [c.transcript for c in other]
    # Listing again reuses the composed files instead of writing them again.
    stamp = (tmp_path / "a" / "corpus.json").stat().st_mtime_ns
    assert _sequences(fsdd_folder, tmp_path / "a", count=12, seed=3) == first
    assert (tmp_path / "a" / "corpus.json").stat().st_mtime_ns == stamp


def test_digit_sequences_can_hold_out_speakers(fsdd_folder, tmp_path):
    clips = _sequences(fsdd_folder, tmp_path, count=30, held_out="speakers")
    speakers = {split: {c.metadata["speaker"] for c in clips if c.split == split}
                for split in ("train", "validation", "test")}
    assert len(speakers["test"]) == len(speakers["validation"]) == 1
    assert not speakers["test"] & (speakers["train"] | speakers["validation"])


def test_digit_sequences_reject_bad_options(fsdd_folder, tmp_path):
    with pytest.raises(CoughclfError, match="held_out"):
        _sequences(fsdd_folder, tmp_path, held_out="digits")
    with pytest.raises(CoughclfError, match="min_digits"):
        _sequences(fsdd_folder, tmp_path, min_digits=5, max_digits=3)


# --- settings and data ---------------------------------------------------------------------------

def _config(data_dir, **sections):
    raw = {"name": "tiny_ctc", "data": {"dataset": "yesno", "data_dir": str(data_dir), "sample_rate": 8000},
           "split": {"method": "official", "val": 0.0}, "model": dict(TINY_MODEL), "frontend": TINY_FRONTEND,
           "train": {"epochs": 2, "batch_size": 4, "patience": 0}, "ctc": {"beam_width": 4, "examples": 1}}
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_dict(raw)


def test_ctc_settings_are_checked(tmp_path):
    from coughclf.speech import ctc_settings

    assert ctc_settings(_config(tmp_path))["beam_width"] == 4
    with pytest.raises(CoughclfError, match="unknown key 'ctc.beam'"):
        ctc_settings(_config(tmp_path, ctc={"beam": 3}))
    with pytest.raises(CoughclfError, match="ctc.beam_width must be an integer"):
        ctc_settings(_config(tmp_path, ctc={"beam_width": "wide"}))
    with pytest.raises(CoughclfError, match="greedy"):
        ctc_settings(_config(tmp_path, ctc={"decoder": "viterbi"}))


def test_required_frames_count_a_blank_between_repeats():
    from coughclf.speech import required_frames

    assert required_frames("") == 0
    assert required_frames("cat") == 3
    assert required_frames("hello") == 6
    assert required_frames("aaa") == 5


def _long_yesno(root, names, seconds=1.0):
    """A yesno layout whose recordings are long enough for their transcripts."""
    for index, name in enumerate(names):
        write_audio(Path(root) / "waves_yesno" / f"{name}.wav",
                    tone(seconds=seconds, sample_rate=8000, frequency=300.0 + 200 * name.count("1"), seed=index),
                    8000)
    return Path(root)


def test_batches_are_padded_with_lengths_and_encoded_transcripts(tmp_path):
    from coughclf.prepare import prepare
    from coughclf.speech import make_ctc_dataset, normalized_transcripts
    from coughclf.text import decode

    data_dir = write_yesno(tmp_path / "yesno", count=6)
    prepare("yesno", data_dir, tmp_path / "cache", sample_rate=8000, progress=False)
    from coughclf.cache import open_cache

    cache = open_cache(tmp_path / "cache")
    ids = [row["id"] for row in cache.manifest]
    texts = normalized_transcripts(cache, ids)
    batches = list(make_ctc_dataset(cache, ids, texts, mode="eval", batch_size=4, with_ids=True))
    rows = {row["id"]: row for row in cache.manifest}
    seen = 0
    for inputs, labels in batches:
        for clip_id, length, label_row in zip(inputs["id"].numpy(), inputs["length"].numpy(), labels.numpy()):
            clip_id = clip_id.decode()
            assert length == int(rows[clip_id]["num_samples"])
            assert decode(label_row) == normalize(rows[clip_id]["transcript"]) == texts[clip_id]
            seen += 1
        assert inputs["audio"].shape[1] == inputs["length"].numpy().max()
    assert seen == len(ids)


def test_training_refuses_when_no_utterance_fits_its_transcript(tmp_path):
    from coughclf.train import train

    data_dir = write_yesno(tmp_path / "yesno", count=4)  # 0.25 s for eight words
    config = _config(data_dir, data={"cache": str(tmp_path / "cache")})
    with pytest.raises(CoughclfError, match="too short"):
        train(config, tmp_path / "run")


# --- training and evaluation --------------------------------------------------------------------

def test_train_and_evaluate_write_a_complete_run(tmp_path):
    from coughclf.speech import evaluate_ctc
    from coughclf.train import train

    names = ["0_1", "1_1", "0_0", "1_0", "0_1_1", "1_0_0", "0_0_1", "1_1_0"]
    data_dir = _long_yesno(tmp_path / "yesno", names)
    config = _config(data_dir, data={"cache": str(tmp_path / "cache")})
    run = train(config, tmp_path / "run")
    for name in ("config.toml", "split.json", "best.keras", "history.json", "history.csv", "training.json",
                 "metrics.json", "examples.csv"):
        assert (run / name).exists(), name
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    training = json.loads((run / "training.json").read_text())
    assert training["monitor"] == "loss" and training["train_utterances"] == 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["utterances"] == 4 and metrics["decoder"] == "beam_search"
    for decoder in ("greedy", "beam_search"):
        assert metrics[decoder]["words"] == sum(name.count("_") + 1 for name in sorted(names)[4:])  # test half
        assert 0.0 <= metrics[decoder]["cer"] and metrics[decoder]["chars"] > 0
    assert metrics["cer"] == metrics["beam_search"]["cer"]
    assert len((run / "examples.csv").read_text().strip().splitlines()) == 5
    # A finished run is not trained again; other splits get their own files.
    assert train(config, run) == run
    assert json.loads((run / "history.json").read_text()) == history
    train_metrics = evaluate_ctc(run, split="train")
    assert train_metrics["utterances"] == 4 and (run / "metrics-train.json").exists()


@pytest.mark.slow  # a CTC run and its lexicon decoding: ~8 s loaded
def test_the_lexicon_decoder_writes_only_training_words_and_reports_beside_the_others(tmp_path):
    from coughclf.config import dump_config
    from coughclf.speech import evaluate_ctc
    from coughclf.train import train

    names = ["0_1", "1_1", "0_0", "1_0", "0_1_1", "1_0_0", "0_0_1", "1_1_0"]
    config = _config(_long_yesno(tmp_path / "yesno", names), data={"cache": str(tmp_path / "cache")})
    run = train(config, tmp_path / "run")
    config["ctc"] = {**config.get("ctc", {}), "decoder": "lexicon"}
    dump_config(config, run / "config.toml")
    metrics = evaluate_ctc(run)
    assert metrics["decoder"] == "lexicon" and metrics["wer"] == metrics["lexicon"]["wer"]
    assert metrics["lexicon"]["lexicon_words"] == 2 and metrics["greedy"]["words"] == metrics["lexicon"]["words"]
    with open(run / "examples.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {"greedy", "beam_search", "lexicon"} <= set(rows[0])
    assert all(set(row["lexicon"].split()) <= {"yes", "no"} for row in rows)


def test_lexicon_words_come_from_a_file_or_the_training_transcripts(tmp_path):
    from coughclf.speech import ctc_settings, lexicon_words

    assert lexicon_words({"lexicon": "", "numbers_as_words": True}, ["no yes", "yes yes"]) == ["no", "yes"]
    word_list = tmp_path / "words.txt"
    word_list.write_text("Three\n4\n\nyes\n")
    assert lexicon_words({"lexicon": str(word_list), "numbers_as_words": True}, []) == ["four", "three", "yes"]
    with pytest.raises(CoughclfError, match="is not a file"):
        ctc_settings(_config(tmp_path, ctc={"lexicon": str(tmp_path / "missing.txt")}))


# --- the experiment configs ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["speech_yesno", "speech_digit_sequences", "speech_ljspeech", "speech_librispeech"])
def test_speech_configs_validate(name):
    from coughclf.speech import build_ctc_model, ctc_settings

    config = load_config(EXPERIMENTS / f"{name}.toml")
    assert config["task"] == "ctc"
    ctc_settings(config)
    model = build_ctc_model(config, config["data"]["sample_rate"])
    assert model.get_layer("log_mel").sample_rate == config["data"]["sample_rate"]


def _lengthen_audio(folder, suffix, sample_rate, seconds=3.0):
    for index, path in enumerate(sorted(Path(folder).rglob(f"*{suffix}"))):
        write_audio(path, tone(seconds=seconds, sample_rate=sample_rate, frequency=200.0 + 50 * index, seed=index),
                    sample_rate)


@pytest.mark.slow
@pytest.mark.parametrize("name, writer, suffix, rate", [
    # Four books, so that whole books can be held out for validation and test.
    ("speech_ljspeech", lambda root: write_ljspeech(root, ids=[f"LJ00{book}-0001" for book in range(1, 5)],
                                                    missing_wav="LJ005-0001"), ".wav", 22050),
    ("speech_librispeech", write_librispeech, ".flac", 16000),
])
def test_big_corpus_configs_run_unchanged_on_miniature_layouts(tmp_path, name, writer, suffix, rate):
    from coughclf.train import train

    data_dir = writer(tmp_path / "data")
    _lengthen_audio(data_dir, suffix, rate)
    folder = data_dir / "LJSpeech-1.1" if name == "speech_ljspeech" else data_dir / "LibriSpeech"
    overrides = [f"data.data_dir={json.dumps(str(folder))}", f"data.cache={json.dumps(str(tmp_path / 'cache'))}",
                 "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=2"]
    if name == "speech_ljspeech":  # a book each for validation and test
        overrides += ["split.val=0.25", "split.test=0.25"]
    run = train(load_config(EXPERIMENTS / f"{name}.toml", overrides), tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["utterances"] >= 1 and np.isfinite(metrics["greedy"]["cer"])


# --- word crops ----------------------------------------------------------------------------------

def _spoken_words(bits, seed, sample_rate=8000, lead=0.5, word=0.4, gap=0.2):
    """Tones for the words of ``bits`` (higher for "yes") after a silent lead, a gap between each."""
    rng = np.random.default_rng(seed)

    def silence(seconds):
        return 0.001 * rng.standard_normal(int(seconds * sample_rate)).astype(np.float32)

    pieces = [silence(lead)]
    for index, bit in enumerate(bits):
        pieces += [tone(word, sample_rate, 300.0 + 300 * int(bit), seed=seed + index), silence(gap)]
    return np.concatenate(pieces)


def test_word_starts_cut_in_the_gaps_and_refuse_a_missing_gap():
    from coughclf.speech import word_starts

    rate, lead, word, gap = 8000, 0.5, 0.4, 0.2
    audio = _spoken_words("101", seed=0, sample_rate=rate, lead=lead, word=word, gap=gap)
    starts = word_starts(audio, rate, 3)
    assert len(starts) == 3 and lead * rate - 0.15 * rate <= starts[0] <= lead * rate
    for index, start in enumerate(starts[1:], 1):
        gap_begins = (lead + index * word + (index - 1) * gap) * rate
        assert gap_begins <= start <= gap_begins + gap * rate
    assert word_starts(audio, rate, 4) is None  # three words cannot be cut into four
    merged = _spoken_words("10", seed=1, sample_rate=rate, lead=lead, word=word, gap=0.0)
    assert word_starts(np.concatenate([merged, audio]), rate, 5) is None  # a gap is missing: too long a word


def test_word_crops_start_utterances_at_a_word_with_the_rest_of_the_transcript(tmp_path):
    from coughclf.cache import open_cache
    from coughclf.prepare import prepare
    from coughclf.speech import make_ctc_dataset, normalized_transcripts, word_crop_table
    from coughclf.text import decode

    names = ["0_1_1", "1_0_0", "0_0_1", "1_1_0"]
    originals = {}
    for seed, name in enumerate(names):
        originals[name] = _spoken_words(name.split("_"), seed=10 * seed)
        write_audio(tmp_path / "yesno" / "waves_yesno" / f"{name}.wav", originals[name], 8000)
    prepare("yesno", tmp_path / "yesno", tmp_path / "cache", sample_rate=8000, progress=False)
    cache = open_cache(tmp_path / "cache")
    texts = normalized_transcripts(cache, names)
    table = word_crop_table(cache, names, texts)
    assert all(len(table[name][0]) == 3 for name in names)
    dataset = make_ctc_dataset(cache, names, texts, mode="train", batch_size=2, word_crops=1.0, with_ids=True)
    first_words = set()
    for _ in range(3):  # epochs draw new crops
        for inputs, labels in dataset:
            for clip_id, audio, length, label_row in zip(inputs["id"].numpy(), inputs["audio"].numpy(),
                                                         inputs["length"].numpy(), labels.numpy()):
                clip_id = clip_id.decode()
                original = soundfile.read(tmp_path / "yesno" / "waves_yesno" / f"{clip_id}.wav",
                                          dtype="float32")[0]
                starts = table[clip_id][0]
                word = [start - starts[0] for start in starts].index(len(original) - length)
                kept = np.concatenate([original[:starts[0]], original[starts[word]:]])
                np.testing.assert_allclose(audio[:length], kept, atol=1e-4)
                assert not audio[length:].any()
                assert decode(label_row) == " ".join(texts[clip_id].split()[word:])
                first_words.add(texts[clip_id].split()[word])
    assert first_words == {"yes", "no"}
