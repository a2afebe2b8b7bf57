"""Per-layer learning-rate factors: the backbone steps by factor x the head's step, for every optimiser."""

import keras
import numpy as np
import pytest

from coughclf.errors import CoughclfError
from coughclf.optimizers import OPTIMIZERS, layerwise_optimizer

FACTOR = 0.1


def two_layer_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="backbone_dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(hidden))
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(weight.shape).astype("float32") for weight in model.get_weights()])
    return model


def one_step(optimizer):
    """Weight changes of one training step of the same model and batch."""
    model = two_layer_model()
    before = [weight.copy() for weight in model.get_weights()]
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", jit_compile=False)
    rng = np.random.default_rng(1)
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, 8)]
    model.train_on_batch(rng.standard_normal((8, 4)).astype("float32"), labels)
    return model, [after - start for after, start in zip(model.get_weights(), before)]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_backbone_steps_are_scaled_and_the_head_keeps_the_rate(name):
    options = {"learning_rate": 0.01, **({"weight_decay": 0.0} if name == "adamw" else {})}
    keras_optimizer = OPTIMIZERS[name].__bases__[1]  # (LayerLearningRates, keras.optimizers.X)
    _, plain = one_step(keras_optimizer(**options))
    model, scaled = one_step(layerwise_optimizer(name, {"backbone_dense": FACTOR}, **options))
    backbone, head = [0, 1], [2, 3]  # kernel and bias of each Dense
    for index in backbone:
        np.testing.assert_allclose(scaled[index], FACTOR * plain[index], rtol=1e-4, atol=1e-7)
    for index in head:
        np.testing.assert_allclose(scaled[index], plain[index], rtol=1e-5, atol=1e-8)
    assert np.abs(plain[0]).max() > 1e-4  # the step is real, not zero on both sides


def test_a_saved_model_with_its_optimizer_loads_again(tmp_path):
    model, _ = one_step(layerwise_optimizer("adam", {"backbone_dense": FACTOR}, learning_rate=0.01))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.optimizer).__name__ == "LayerwiseAdam"
    assert loaded.optimizer.layer_lr_factors == {"backbone_dense": FACTOR}


def test_unknown_optimizer_and_negative_factor_are_refused():
    with pytest.raises(CoughclfError, match="choose one of adam, adamw, sgd, rmsprop"):
        layerwise_optimizer("adagrad", {})
    with pytest.raises(CoughclfError, match="factor -1.0 of layer 'stem'"):
        layerwise_optimizer("sgd", {"stem": -1.0})
