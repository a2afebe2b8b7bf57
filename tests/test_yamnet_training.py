"""YAMNet transfer learning end to end on miniature data with random release weights (.h5 layout):
the frozen backbone's cached embeddings, the whole model as best.keras, fine-tuning, export, errors."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from coughclf.config import load_config
from coughclf.errors import CoughclfError
from coughclf.export import convert_tflite, flatbuffer_operators, inference_model
from coughclf.models import build
from coughclf.predict import load_predictor, predict_files
from coughclf.pretrained.embedding_views import EmbeddingView
from coughclf.train import train
from miniatures import write_esc10
from test_export import clips, run_tflite
from test_yamnet import random_release_weights, write_keras2_h5

REPO = Path(__file__).resolve().parents[1]
# The shipped views are five more embedding passes: the tests not about them leave them out.
SHORT = ["data.clip_seconds=1.0", "train.batch_size=4", "metrics.bootstrap=20", "split.test_folds=[1]",
         "split.val_folds=[2]", "split.train_folds=[3, 4, 5]", "augment.embedding_views=[]"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("yamnet")
    write_keras2_h5(root / "yamnet.h5", random_release_weights())
    return root, write_esc10(root / "esc10")


def esc10_config(setup, tmp_path, *overrides, experiment="esc10_yamnet.toml"):
    root, data = setup
    return load_config(REPO / "experiments" / "esc" / experiment, [
        f"data.data_dir={data}", f"data.cache={root / 'cache'}", f"model.weights={root / 'yamnet.h5'}", *SHORT,
        *overrides])


def test_frozen_backbone_trains_the_head_on_cached_embeddings(setup, tmp_path, capsys):
    config = esc10_config(setup, tmp_path, "train.epochs=3", "augment.mixup={alpha = 0.2}",
                          "augment.label_smoothing=0.1")
    run = train(config, tmp_path / "run")
    assert "computing the embeddings of 15 clips once" in capsys.readouterr().out
    stored = list((setup[0] / "cache" / "embeddings").glob("yamnet-*.npz"))
    assert len(stored) == 1
    with np.load(stored[0]) as cached:
        assert cached["embeddings"].shape == (15, 2, 1024)  # 1 s: two patches
    training = json.loads((run / "training.json").read_text())
    # The head only: attention pooling (1,024 + 1), the hidden layer, the 3-class classifier.
    assert training["parameters"] == 1025 + 1024 * 256 + 256 + 256 * 3 + 3
    # best.keras is the whole waveform model, front end and backbone included, and agrees with the cache.
    model = keras.saving.load_model(run / "best.keras", safe_mode=True)
    assert model.input.shape == (None, 16000) and model.output.shape == (None, 3)
    assert not model.get_layer("layer5_pointwise_conv").trainable
    reference = build("yamnet", weights=setup[0] / "yamnet.h5", num_classes=3, clip_seconds=1.0)
    np.testing.assert_array_equal(np.asarray(model.get_layer("layer5_pointwise_conv").kernel),
                                  np.asarray(reference.get_layer("layer5_pointwise_conv").kernel))
    assert json.loads((run / "metrics.json").read_text())["n"] == 3
    # A second run reuses the embeddings; a clip length that changes them computes new ones.
    train(esc10_config(setup, tmp_path, "train.epochs=1"), tmp_path / "again")
    assert "computing the embeddings" not in capsys.readouterr().out
    train(esc10_config(setup, tmp_path, "train.epochs=1", "data.clip_seconds=0.5"), tmp_path / "shorter")
    assert "computing the embeddings of 15 clips once" in capsys.readouterr().out
    assert len(list((setup[0] / "cache" / "embeddings").glob("yamnet-*.npz"))) == 2
    # The run predicts like any other.
    rows = predict_files(run / "best.keras", [setup[1]])
    assert len(rows) == 15 and all("error" not in row for row in rows)
    assert load_predictor(run / "best.keras").metadata["labels"] == training["classes"]


def test_embedding_views_train_the_head_on_extra_views_each_cached_once(setup, tmp_path, capsys):
    views = "augment.embedding_views=[{shift_seconds = 0.1}, {shift_seconds = -0.2, gain_db = 6.0}]"
    cache = f"data.cache={tmp_path / 'cache'}"
    run = train(esc10_config(setup, tmp_path, "train.epochs=1", views, cache), tmp_path / "run")
    out = capsys.readouterr().out
    assert "computing the embeddings of 15 clips once" in out
    assert "15 clips shifted by 0.1 s and gained by 0.0 dB" in out and "shifted by -0.2 s and gained by 6.0" in out
    assert json.loads((run / "training.json").read_text())["trained_on"].endswith("2 extra views")
    stored = sorted((tmp_path / "cache" / "embeddings").glob("yamnet-*.npz"))
    assert len(stored) == 3
    arrays = [np.load(path)["embeddings"] for path in stored]
    assert all(array.shape == (15, 2, 1024) for array in arrays)
    assert not np.allclose(arrays[0], arrays[1]) and not np.allclose(arrays[1], arrays[2])
    # A view added computes only it; a view changed computes it anew; the clips' own embeddings stay.
    more = views.replace("]", ", {gain_db = -12.0}]")
    train(esc10_config(setup, tmp_path, "train.epochs=1", cache, more), tmp_path / "more")
    out = capsys.readouterr().out
    assert out.count("computing the embeddings") == 1 and "gained by -12.0 dB" in out
    train(esc10_config(setup, tmp_path, "train.epochs=1", cache, views.replace("6.0", "3.0")), tmp_path / "gain")
    out = capsys.readouterr().out
    assert out.count("computing the embeddings") == 1 and "shifted by -0.2 s and gained by 3.0 dB" in out
    assert len(list((tmp_path / "cache" / "embeddings").glob("yamnet-*.npz"))) == 5


def test_embedding_views_of_a_frozen_model_without_embeddings_are_refused():
    from coughclf.config import config_from_dict
    from coughclf.pretrained.embedding_head import uses_cached_embeddings

    config = config_from_dict({"data": {"dataset": "folder", "data_dir": "sounds"},
                               "model": {"name": "resnet18", "weights": "resnet18.pth", "freeze": "backbone"},
                               "augment": {"embedding_views": [{"shift_seconds": 0.1}]}}, "frozen.toml",
                              check_names=False)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="classifier")(inputs))
    with pytest.raises(CoughclfError, match="frozen.toml: augment.embedding_views .* resnet18 has no 'embeddings'"):
        uses_cached_embeddings(config, model)
    config["augment"]["embedding_views"] = []
    assert not uses_cached_embeddings(config, model)


def test_an_embedding_view_shifts_in_zeros_and_gains_every_clip_alike():
    audio = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    delayed = EmbeddingView(shift_seconds=0.25, gain_db=20.0).view(audio, sample_rate=16)
    assert delayed.shape == audio.shape and delayed.dtype == audio.dtype
    np.testing.assert_array_equal(delayed[:, :4], 0.0)
    np.testing.assert_allclose(delayed[:, 4:], 10.0 * audio[:, :-4], rtol=1e-6)
    advanced = EmbeddingView(shift_seconds=-0.125).view(audio, sample_rate=16)
    np.testing.assert_array_equal(advanced[:, :-2], audio[:, 2:])
    np.testing.assert_array_equal(advanced[:, -2:], 0.0)
    with pytest.raises(CoughclfError, match="shifts the whole clip out"):
        EmbeddingView(shift_seconds=1.0).view(audio, sample_rate=16)


@pytest.mark.parametrize("views, message", [
    ("[{shift_seconds = 0.0}]", "is the clip itself"),
    ("[{gain_db = true}]", "gain_db must be a number"),
    ("[{shift_seconds = 0.1}, {shift = 0.1}]", "\\[1\\]: unknown key 'shift'"),
    ("[{gain_db = 6.0}, {gain_db = 6.0}]", "lists a view twice"),
    ("{shift_seconds = 0.1}", "must be a list of tables"),
])
def test_bad_embedding_views_are_refused_when_the_config_loads(setup, tmp_path, views, message):
    with pytest.raises(CoughclfError, match=f"augment.embedding_views.*{message}"):
        esc10_config(setup, tmp_path, f"augment.embedding_views={views}")


def test_embedding_views_need_a_frozen_backbone(setup, tmp_path):
    with pytest.raises(CoughclfError, match="need model.freeze = 'backbone'"):
        esc10_config(setup, tmp_path, "augment.embedding_views=[{gain_db = 6.0}]",
                     experiment="esc10_yamnet_finetune.toml")


def test_windows_are_embedded_once_each_and_evaluated_as_clips(setup, tmp_path, capsys):
    windows = ["data.clip_seconds=2.0", "data.windows=3", "data.window_seconds=1.0", f"data.cache={tmp_path / 'cache'}"]
    run = train(esc10_config(setup, tmp_path, "train.epochs=2", *windows), tmp_path / "run")
    assert "computing the embeddings of 15 clips once" in capsys.readouterr().out
    (stored,) = (tmp_path / "cache" / "embeddings").glob("yamnet-*.npz")
    with np.load(stored) as cached:
        assert cached["embeddings"].shape == (45, 2, 1024)  # 3 windows of 1 s per clip, two patches each
        ids = cached["ids"].tolist()
    assert ids[0::3] == ids[1::3] == ids[2::3] and len(set(ids)) == 15
    model = keras.saving.load_model(run / "best.keras", safe_mode=True)
    assert model.input.shape == (None, 16000)  # the model hears one window
    assert json.loads((run / "metrics.json").read_text())["n"] == 3  # scored per clip, its windows averaged
    # The window count is part of the key: two windows are embedded anew, three again are reused.
    train(esc10_config(setup, tmp_path, "train.epochs=1", *windows, "data.windows=2"), tmp_path / "two")
    assert "computing the embeddings of 15 clips once" in capsys.readouterr().out
    train(esc10_config(setup, tmp_path, "train.epochs=1", *windows), tmp_path / "again")
    assert "computing the embeddings" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "embeddings").glob("yamnet-*.npz"))) == 2


@pytest.mark.parametrize("override, message", [
    ("augment.time_shift={max_fraction = 0.5}", "augmentation layers \\(time_shift\\) never run"),
    ("balance.mode=oversample", "balance.mode = 'class_weight'"),
    ("augment.between_class={}", "between-class mixing"),
    ("data.random_windows=true", "data.random_windows"),
])
def test_what_cached_embeddings_cannot_honour_is_refused(setup, tmp_path, override, message):
    with pytest.raises(CoughclfError, match=message):
        train(esc10_config(setup, tmp_path, "train.epochs=1", override), tmp_path / "run")


def test_fine_tuning_end_to_end_keeps_batch_norm_statistics(setup, tmp_path):
    config = esc10_config(setup, tmp_path, "train.epochs=1", "train.steps_per_epoch=2",
                          experiment="esc10_yamnet_finetune.toml")
    run = train(config, tmp_path / "run")
    model = keras.saving.load_model(run / "best.keras", safe_mode=True)
    initial = random_release_weights()
    np.testing.assert_allclose(np.asarray(model.get_layer("layer9_pointwise_conv_bn").moving_mean),
                               initial["layer9/pointwise_conv/bn/moving_mean:0"])  # inference-mode batch norm
    assert not np.allclose(np.asarray(model.get_layer("layer9_pointwise_conv").kernel),
                           initial["layer9/pointwise_conv/kernel:0"])  # but the backbone learnt


def test_fine_tuned_yamnet_exports_with_builtin_ops(setup):
    model = build("yamnet", weights=setup[0] / "yamnet.h5", num_classes=3, clip_seconds=1.0, head="mlp",
                  pooling="mean_max", hidden_units=16)
    export = inference_model(model)
    inputs = clips(2, 16000, seed=5)
    expected = np.asarray(model.predict_on_batch(np.stack(inputs)))
    for quantize, tolerance in {"none": 1e-4, "dynamic": 0.05}.items():
        content = convert_tflite(export, quantize)
        assert not [op for op in flatbuffer_operators(content) if op.startswith("CUSTOM")], quantize
        actual = np.stack([run_tflite(content, waveform) for waveform in inputs])
        assert np.abs(actual - expected).max() <= tolerance, quantize


def test_predict_tags_with_the_published_classes(setup, tmp_path):
    from conftest import tone, write_audio
    from coughclf.predict import write_timelines

    audio = write_audio(tmp_path / "tone.wav", tone(seconds=2.0))
    predictor = load_predictor(f"yamnet:{setup[0] / 'yamnet.h5'}")
    assert predictor.metadata["clip_samples"] == 15600 and predictor.metadata["hop_samples"] == 7680
    (row,) = predict_files(None, [audio], predictor=predictor, top=3, timeline=True)
    assert row["windows"] == 4  # 0.975 s patches at 0, 0.48, 0.96 s, and one ending at the last sample
    assert [label for label, _ in row["top"]] == sorted(row["probabilities"], key=row["probabilities"].get,
                                                        reverse=True)[:3]
    assert len(row["probabilities"]) == 521 and "Speech" in row["probabilities"]
    (csv_path,) = write_timelines([row], tmp_path / "timeline", predictor.metadata["labels"])
    assert csv_path.with_suffix(".png").exists()
    with pytest.raises(CoughclfError, match="resnet18 has no published classes"):
        load_predictor("resnet18:resnet18.pth")
