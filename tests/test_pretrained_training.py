"""The shipped fine-tuning experiments run end to end on tiny random-weight checkpoints and miniature data.

Only what a user would pass changes: the data folder, the cache, ``model.weights``, and sizes that keep
the run short (one epoch of two steps; the AST at a tiny width and another clip length than its
checkpoint's, so the positional grid is resized on the way).
"""

import json
from pathlib import Path

import keras
import pytest

from coughclf.config import load_config
from coughclf.errors import CoughclfError
from coughclf.train import train
from miniatures import write_covid19_cough, write_esc10
from torch_reference import TINY, random_ast, random_torchvision, torch

REPO = Path(__file__).resolve().parents[1]
SHORT = ["train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=4", "metrics.bootstrap=20"]


@pytest.mark.slow  # an AST fine-tuned end to end: ~30 s loaded
def test_ast_finetune_esc10_trains_and_evaluates(tmp_path):
    checkpoint = tmp_path / "ast-tiny"
    random_ast(TINY).save_pretrained(checkpoint)
    config = load_config(REPO / "experiments" / "esc" / "ast_finetune_esc10.toml", [
        f"data.data_dir={write_esc10(tmp_path / 'esc10')}", f"data.cache={tmp_path / 'cache'}",
        f"model.weights={checkpoint}", "model.frames=76", "split.test_folds=[1]", "split.val_folds=[2]",
        "split.train_folds=[3, 4, 5]", *SHORT])

    class TrainedWith(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            TrainedWith.optimizer = self.model.optimizer

    run = train(config, tmp_path / "run", callbacks=[TrainedWith()])
    model = keras.saving.load_model(run / "best.keras", safe_mode=True)
    assert model.get_layer("kaldi_fbank").normalization == "audioset"
    assert model.get_layer("positional_embedding").grid == (3, 7)  # the checkpoint's 3 x 5, interpolated
    assert model.output.shape[1:] == (3,)  # a new head for the miniature's 3 classes
    assert not model.compiled  # best.keras is the model alone; the optimizer trained it
    factors = TrainedWith.optimizer.layer_lr_factors
    assert factors["block0_attn"] == factors["patch_embedding"] == 0.1 and "head" not in factors
    assert json.loads((run / "metrics.json").read_text())["n"] == 3


@pytest.mark.slow  # ResNet18 at its full 11.7 M weights: ~40 s on two cores
def test_resnet18_imagenet_covid19_trains_the_head_only_when_frozen(tmp_path):
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(random_torchvision("resnet18").state_dict(), checkpoint)
    rows = [(f"{index:02d}-{'pos' if index % 2 else 'neg'}", bool(index % 2), None, None,
             "call-center" if index % 3 else "telegram") for index in range(40)]
    config = load_config(REPO / "experiments" / "cough" / "resnet18_imagenet_covid19.toml", [
        f"data.data_dir={write_covid19_cough(tmp_path / 'covid', rows=rows)}", f"data.cache={tmp_path / 'cache'}",
        f"model.weights={checkpoint}", "model.freeze=backbone", "data.clip_seconds=1.0", *SHORT])
    run = train(config, tmp_path / "run")
    training = json.loads((run / "training.json").read_text())
    assert training["parameters"] == 512 * 2 + 2  # the new 2-class fc only
    model = keras.saving.load_model(run / "best.keras", safe_mode=True)
    assert model.get_layer("imagenet_normalization") is not None
    assert not model.get_layer("stem_conv").trainable and model.get_layer("fc").trainable


@pytest.mark.parametrize("overrides, message", [
    (["model.weights=missing/resnet18.pth"], "model.weights = 'missing/resnet18.pth' does not exist"),
    (["model.weights=", "model.freeze=backbone"], "set model.weights to a checkpoint"),
    (["optimizer.backbone_lr_factor=-0.5"], "backbone_lr_factor = -0.5 must be >= 0"),
    (["model.name=kws_cnn"], "kws_cnn does not"),
])
def test_bad_pretrained_settings_fail_before_any_work(overrides, message, tmp_path):
    from coughclf.train import train as run_training

    with pytest.raises(CoughclfError, match=message):
        config = load_config(REPO / "experiments" / "cough" / "resnet18_imagenet_covid19.toml",
                             [f"data.cache={tmp_path / 'cache'}", *overrides])
        run_training(config, tmp_path / "run")
    assert not (tmp_path / "cache").exists()
