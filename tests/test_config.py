"""Experiment configs: schema, errors naming the key and file, --set overrides, TOML round trips."""

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from coughclf.config import apply_override, check_data, dumps_config, load_config
from coughclf.errors import CoughclfError

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*/*.toml"))

MINIMAL = '[data]\ndataset = "fsdd"\n[model]\nname = "kws_cnn"\n'


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_loads_validates_and_round_trips(path, tmp_path):
    config = load_config(path)
    assert config["name"] and config["task"] in ("classification", "ctc")
    copy = write(tmp_path, dumps_config(config))
    assert load_config(copy) == config


def test_the_experiments_cover_every_report_model():
    models = {load_config(path)["model"]["name"] for path in EXPERIMENTS}
    assert {"cough_small_cnn", "cough_large_cnn", "cough_crnn", "cough_crnn_attention", "kws_cnn", "kws_crnn",
            "kws_parallel_cnn_lstm", "resnet18", "resnet34", "ast", "esc_cnn1d", "esc_conv_transformer"} <= models
    heads = {load_config(path)["model"].get("num_heads") for path in EXPERIMENTS if "esc_conv" in path.stem}
    assert heads == {1, 2, 4}


def test_defaults_are_filled_in_and_name_comes_from_the_file(tmp_path):
    config = load_config(write(tmp_path, MINIMAL, "my_run.toml"))
    assert config["name"] == "my_run"
    assert config["task"] == "classification"  # from the model's registry entry
    assert config["train"]["epochs"] == 30 and config["optimizer"]["lr"] == 1e-3
    assert config["split"]["method"] == "random" and config["balance"]["mode"] == "none"


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "[train]\nepoch = 3\n", r"unknown key 'train\.epoch' \(did you mean 'epochs'\?\)"),
    (MINIMAL + "[trian]\nepochs = 3\n", r"unknown key 'trian' \(did you mean 'train'\?\)"),
    (MINIMAL + '[train]\nepochs = "ten"\n', r"train\.epochs must be an integer, got 'ten'"),
    (MINIMAL + "[train]\nepochs = true\n", r"train\.epochs must be an integer"),
    (MINIMAL + "[optimizer]\nlr = [1]\n", r"optimizer\.lr must be a number"),
    (MINIMAL + '[split]\nmethod = "bogus"\n', r"split\.method = 'bogus' is not one of"),
    (MINIMAL + "[model]\n", r"not valid TOML"),
    ('[model]\nname = "kws_cnn"\n', r"required key 'data\.dataset' is missing"),
    ('[data]\ndataset = "nope"\n[model]\nname = "kws_cnn"\n', r"data\.dataset = 'nope' is not a known dataset"),
    ('[data]\ndataset = "fsdd"\n[model]\nname = "kws_cnnn"\n', r"model\.name = 'kws_cnnn' is not a known model"),
    ('[data]\ndataset = "fsdd"\n[model]\nname = "kws_cnn"\ndropot = 0.1\n', r"unknown key 'model\.dropot'"),
    (MINIMAL + "[augment]\npitch_shfit = { max_semitones = 2 }\n", r"unknown key 'augment\.pitch_shfit'"),
    (MINIMAL + "[augment]\ntime_shift = { max_seconds = 0.1, fill = \"zeros\" }\n", r"\[augment\].*fill='zeros'"),
    (MINIMAL.replace('"fsdd"', '"fsdd"\nwindows = 9'), r"data\.windows is set but data\.window_seconds is not"),
    (MINIMAL + "[split]\ntest = 1.5\n", r"split\.test = 1\.5 must be in \[0, 1\)"),
    (MINIMAL + '[optimizer]\nschedule = "plateau"\nwarmup_epochs = 2\n', r"warmup_epochs needs an epoch-wise"),
    (MINIMAL + '[balance]\nwithin = "meta_source"\n', r"balance\.mode must be 'oversample' or 'undersample'"),
    (MINIMAL + "[optimizer]\nema = 1.0\n", r"optimizer\.ema = 1\.0 must be in \[0, 1\)"),
    (MINIMAL + "[optimizer]\nwarmup_epochs = 30\n", r"warmup_epochs = 30 must be between 0 and .*\(29\)"),
    # [frontend], [ctc] and [tune] are checked at load time too, through the same key machinery
    (MINIMAL + "[frontend]\nn_mel = 40\n", r"unknown key 'frontend\.n_mel' \(did you mean 'n_mels'\?\)"),
    (MINIMAL + '[frontend]\nmel_scale = "bark"\n', r"\[frontend\]: LogMelSpectrogram: mel_scale='bark'"),
    ('[data]\ndataset = "fsdd"\n[model]\nname = "esc_cnn1d"\n[frontend]\nn_mels = 40\n',
     r"esc_cnn1d reads the raw waveform and has no spectrogram front end"),
    (MINIMAL + "[ctc]\nbeam = 3\n", r"unknown key 'ctc\.beam'"),
    (MINIMAL + '[ctc]\ndecoder = "viterbi"\n', r"ctc\.decoder = 'viterbi' is not one of 'greedy'"),
    (MINIMAL + "[ctc]\nword_crops = 2.0\n", r"ctc\.word_crops = 2\.0 must be in \[0, 1\]"),
    (MINIMAL + "[tune]\nmax_trails = 3\n", r"unknown key 'tune\.max_trails' \(did you mean 'max_trials'\?\)"),
    (MINIMAL + "[tune]\ncv = 0\n", r"tune\.cv = 0 must be >= 1"),
])
def test_invalid_configs_name_the_key_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CoughclfError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_a_run_folder_config_is_read_through_load_config(tmp_path):
    from coughclf.config import dump_config
    from coughclf.runs import run_config

    with pytest.raises(CoughclfError, match="is not a run folder \\(no config.toml\\)"):
        run_config(tmp_path)
    dump_config(load_config(write(tmp_path, MINIMAL + "[ctc]\nbeam_width = 4\n")), tmp_path / "config.toml")
    config = run_config(tmp_path)
    assert config["ctc"]["beam_width"] == 4 and config["tune"]["max_trials"] == 10  # defaults filled in
    (tmp_path / "config.toml").write_text(MINIMAL + "[tune]\ntuner = \"grid\"\n")
    with pytest.raises(CoughclfError, match="tune.tuner = 'grid' is not one of"):
        run_config(tmp_path)


def test_overrides_are_read_as_toml_and_coerced_to_the_schema(tmp_path):
    path = write(tmp_path, MINIMAL)
    config = load_config(path, ["optimizer.lr=1e-4", "train.epochs=5", "optimizer.weight_decay=0",
                                "data.options.esc10=true", "split.test_folds=[1, 2]", "model.name=kws_crnn",
                                "augment.time_inversion.probability=0.5", "metrics.group_by=meta_source",
                                "data.cache=prepared/1e4"])
    assert config["optimizer"]["lr"] == pytest.approx(1e-4)
    assert config["train"]["epochs"] == 5
    assert config["optimizer"]["weight_decay"] == 0.0 and isinstance(config["optimizer"]["weight_decay"], float)
    assert config["data"]["options"] == {"esc10": True}
    assert config["split"]["test_folds"] == [1, 2]
    assert config["model"]["name"] == "kws_crnn"
    assert config["augment"] == {"time_inversion": {"probability": 0.5}}
    assert config["metrics"]["group_by"] == ["meta_source"]
    assert config["data"]["cache"] == "prepared/1e4"


@pytest.mark.parametrize("assignment, message", [
    ("optimizer.lr", "section.key=value"),
    ("train.epochs=five", r"train\.epochs must be an integer, got 'five'"),
    ("train.epochs.deep=1", "'epochs' is a value, not a table"),
])
def test_bad_overrides_are_refused(tmp_path, assignment, message):
    with pytest.raises(CoughclfError, match=message):
        load_config(write(tmp_path, MINIMAL + "[train]\nepochs = 3\n"), [assignment])


def test_apply_override_creates_nested_tables():
    raw = {}
    apply_override(raw, "augment.spec_augment.freq_masks=2")
    assert raw == {"augment": {"spec_augment": {"freq_masks": 2}}}


def test_dump_writes_valid_toml_for_awkward_values(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ['description="a \\"quoted\\" name, ünïcode"',
                                                    "data.options.weird-key=1.5e-7",
                                                    "augment.coloured_noise.snr_db=[10.0, 30.0]"])
    text = dumps_config(config)
    assert tomllib.loads(text)["description"] == 'a "quoted" name, ünïcode'
    assert load_config(write(tmp_path, text, "again.toml")) == config


def test_check_data_explains_what_is_missing(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(CoughclfError, match=r"no data\.cache and data\.data_dir is not set"):
        check_data(config)
    config = load_config(write(tmp_path, MINIMAL), [f"data.cache={tmp_path / 'nowhere'}"])
    with pytest.raises(CoughclfError, match=r"data\.cache = .*nowhere.* does not exist"):
        check_data(config)
    # A folder that exists is examined: what is wrong with it, not a missing data.data_dir.
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "cache.json").write_text('{"format": 1, "sample_rate": 16000, "classes": ["a"]}')
    config = load_config(write(tmp_path, MINIMAL), [f"data.cache={unfinished}"])
    with pytest.raises(CoughclfError, match=r"has no manifest.csv: its preparation did not finish") as raised:
        check_data(config)
    assert "data_dir" not in str(raised.value)
    (unfinished / "cache.json").write_text("[1, 2]")
    with pytest.raises(CoughclfError, match=r"cache.json is not a coughclf cache description"):
        check_data(config)
    config = load_config(write(tmp_path, MINIMAL), [f"data.data_dir={tmp_path / 'absent'}"])
    with pytest.raises(CoughclfError, match=r"data\.data_dir = .* is not a folder"):
        check_data(config)


def test_warmup_ramps_to_the_rate_then_the_schedule_runs_over_the_remaining_epochs(tmp_path):
    from coughclf.optim import learning_rate_at

    config = load_config(write(tmp_path, MINIMAL + "[train]\nepochs = 12\n[optimizer]\nlr = 0.01\n"
                                                   'schedule = "cosine"\nmin_lr = 0.001\nwarmup_epochs = 3\n'))
    rates = [learning_rate_at(config, epoch) for epoch in range(12)]
    assert rates[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])  # ramp, then cosine from its top
    assert rates[3 + 9 // 2] < rates[4] and rates[-1] > 0.001
    assert rates[-1] == pytest.approx(0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * 8 / 9)))
    assert all(later <= earlier for earlier, later in zip(rates[3:], rates[4:]))


def test_a_config_path_from_before_the_grouping_reads_the_grouped_file(capsys):
    """Scripts written when every experiment sat in experiments/ keep working, told where it moved."""
    old_path = Path(__file__).resolve().parents[1] / "experiments" / "esc10.toml"
    assert not old_path.exists()
    config = load_config(old_path)
    assert config.source.endswith("experiments/esc/esc10.toml") and config["name"] == "esc10"
    assert "experiments/esc/esc10.toml" in capsys.readouterr().err
    with pytest.raises(CoughclfError, match="not found"):
        load_config(old_path.with_name("no_such_experiment.toml"))


# --- issue 25: settings that train nothing, names that escape, --set that drops what it cannot read ---------

@pytest.mark.parametrize("frontend, message", [
    ("fmin = 6000\nfmax = 4000", r"fmin=6000 and fmax=4000 must satisfy 0 <= fmin < fmax <= sample_rate / 2 = 8000"),
    ("fmax = 20000", r"fmin=0 and fmax=20000 must satisfy .* sample_rate / 2 = 8000 Hz"),
    ("n_mels = 100000", r"n_mels=100000 is more mel filters than n_fft=1024 at 16000 Hz can fill .*"
                        r"Empty filters.* use n_mels <= 388"),
    ("n_fft = 256\nn_mels = 128", r"n_mels=128 is more mel filters than n_fft=256 .* use n_mels <= \d+"),
])
def test_a_frontend_that_would_train_nothing_is_refused_at_load(tmp_path, frontend, message):
    path = write(tmp_path, MINIMAL + f"[frontend]\n{frontend}\n")
    with pytest.raises(CoughclfError, match=rf"{path}: \[frontend\]: LogMelSpectrogram: {message}"):
        load_config(path)


def test_the_model_s_own_frontend_is_checked_against_the_data_s_sample_rate(tmp_path):
    """No [frontend] at all: the model's defaults must still fit the rate (fmax 4000 Hz at 16 kHz, not 8 kHz)."""
    text = MINIMAL + "[frontend]\nfmax = 4000\n"
    assert load_config(write(tmp_path, text))["frontend"] == {"fmax": 4000}
    with pytest.raises(CoughclfError, match=r"sample_rate / 2 = 2000 Hz.*\(data\.sample_rate = 4000\)"):
        load_config(write(tmp_path, text), ["data.sample_rate=4000"])


@pytest.mark.parametrize("sample_rate, n_fft, n_mels, fmin, fmax, htk", [
    (16000, 1024, 128, 0.0, None, False), (16000, 512, 128, 0.0, None, True), (16000, 256, 128, 0.0, None, False),
    (8000, 256, 64, 20.0, None, False), (16000, 64, 40, 300.0, 3000.0, True), (22050, 2048, 256, 50.0, 7600.0, False),
    (44100, 400, 200, 0.0, 20000.0, True), (16000, 100, 20, 0.0, None, False), (16000, 2048, 400, 0.0, 8000.0, False),
])
def test_the_empty_filter_check_is_librosa_s_own(sample_rate, n_fft, n_mels, fmin, fmax, htk):
    """Agreement with librosa's "Empty filters detected" over a grid of settings, half of them empty."""
    import warnings

    import librosa

    from coughclf.layers.frontend import mel_filter_problem

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                            dtype=np.float64)
    librosa_warns = any("Empty filters detected" in str(warning.message) for warning in caught)
    assert (mel_filter_problem(sample_rate, n_fft, n_mels, fmin, fmax, htk) is not None) == librosa_warns


@pytest.mark.parametrize("name", ['"../../x"', '"/tmp/x"', '".."', '"."', '"a/b"', '"a b"', '""',
                                  '"' + "x" * 201 + '"'])
def test_a_run_name_is_one_folder_name(tmp_path, name):
    with pytest.raises(CoughclfError, match=r"name = .* it names the run's folder in saved_models/"):
        load_config(write(tmp_path, MINIMAL), [f"name={name}"])
    with pytest.raises(CoughclfError, match=r"name = .*must be one folder name|is longer than"):
        load_config(write(tmp_path, f"name = {name}\n" + MINIMAL))


def test_good_names_and_default_folders_stay_inside_the_runs_root(tmp_path):
    from coughclf.runs import RUNS_ROOT, default_run_folder, new_run_dir
    from coughclf.tune import default_directory

    config = load_config(write(tmp_path, MINIMAL), ["name=kws_cnn-v2.1_ünï"])
    assert new_run_dir(config).parent == RUNS_ROOT
    assert default_directory(config) == RUNS_ROOT / "kws_cnn-v2.1_ünï-tune"
    with pytest.raises(CoughclfError, match="must be one folder name"):  # a config built without load_config
        default_run_folder({**config, "name": "../../x"}, "-cv")
    with pytest.raises(CoughclfError, match=r"name = '\.\.' .*must be one folder name"):  # a file named ...toml
        load_config(write(tmp_path, MINIMAL, "...toml"))


@pytest.mark.parametrize("assignment, message", [
    ("train.batch_size=8\n[train]\nepochs = 500", r"holds a line break .*\(a table header or a second line is not "),
    ("train.batch_size=8\repochs=500", "holds a line break"),
    ("train.batch_size=8 train.epochs=500", r"'train\.epochs=500' reads as a second assignment"),
    ("[train] epochs=500", r"write it as section\.key=value"),
    ("split.train_folds=[1, 2", r"'\[1, 2' is not a valid TOML value"),
    ('description="unterminated', "is not a valid TOML value"),
    ("optimizer.lr", r"section\.key=value"),
])
def test_set_reads_exactly_one_assignment_or_says_what_it_could_not_read(tmp_path, assignment, message):
    with pytest.raises(CoughclfError, match=message) as raised:
        load_config(write(tmp_path, MINIMAL), [assignment])
    assert "\n" not in str(raised.value)


def test_set_still_reads_plain_text_and_any_toml_value(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["description=a = b, said the note", "data.cache=prepared/1e4",
                                                    'data.options.pattern="^(?P<x>.+) y=1"',
                                                    "train.epochs = 7 # tuned"])
    assert config["description"] == "a = b, said the note" and config["data"]["cache"] == "prepared/1e4"
    assert config["data"]["options"] == {"pattern": "^(?P<x>.+) y=1"} and config["train"]["epochs"] == 7


def test_prepare_options_in_the_config_are_checked_like_keys(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["data.prepare.max_file_seconds=600"])
    assert config["data"]["prepare"] == {"max_file_seconds": 600}
    with pytest.raises(CoughclfError, match=r"data\.prepare\.max_file_seconds = -1.0 must be > 0"):
        load_config(write(tmp_path, MINIMAL), ["data.prepare.max_file_seconds=-1"])
    with pytest.raises(CoughclfError, match=r"data\.prepare\.shard_size must be an integer"):
        load_config(write(tmp_path, MINIMAL), ["data.prepare.shard_size=big"])
