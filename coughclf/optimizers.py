"""Keras optimisers with a learning-rate factor per layer: a pretrained backbone learns slower than its head.

Fine-tuning a pretrained network usually gives the new classifier the full learning rate and
the pretrained body a fraction of it (Keras has no parameter groups, unlike PyTorch's
optimisers). :func:`layerwise_optimizer` returns Adam, AdamW, SGD or RMSprop whose update of
each variable uses ``learning_rate * factor``, ``factor`` looked up by the variable's layer
(the first part of ``variable.path``; 1 for layers not listed). The factor scales the step,
so it works for adaptive optimisers too, where scaling the gradient would not (Adam divides
it out). Decoupled weight decay keeps the unscaled rate.

Each class is registered, so a saved model with its optimiser loads again.

Example::

    from coughclf.models import build, spec
    from coughclf.models.checkpoints import layer_groups
    from coughclf.optimizers import layerwise_optimizer

    model = build("resnet18", weights="resnet18-f37072fd.pth", num_classes=3)
    backbone = layer_groups(model, spec("resnet18").pretrained.head_layers)["backbone"]
    optimizer = layerwise_optimizer("adam", {name: 0.1 for name in backbone}, learning_rate=1e-4)
"""

import keras

from coughclf.errors import CoughclfError


class LayerLearningRates:
    """Mixin over a Keras optimiser: ``layer_lr_factors`` = ``{layer name: factor}``."""

    def __init__(self, *args, layer_lr_factors=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.layer_lr_factors = {str(name): float(factor) for name, factor in (layer_lr_factors or {}).items()}

    def build(self, variables):
        # Indexed like the optimiser's own slots, so update_step finds a variable's factor by its index.
        self._variable_lr_factors = [self.layer_lr_factors.get(variable.path.split("/")[0], 1.0)
                                     for variable in variables]
        super().build(variables)

    def update_step(self, gradient, variable, learning_rate):
        factor = self._variable_lr_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "layer_lr_factors": dict(self.layer_lr_factors)}


def _layerwise(base):
    subclass = type(f"Layerwise{base.__name__}", (LayerLearningRates, base),
                    {"__doc__": f"``keras.optimizers.{base.__name__}`` with per-layer learning-rate factors."})
    return keras.saving.register_keras_serializable(package="coughclf")(subclass)


OPTIMIZERS = {"adam": _layerwise(keras.optimizers.Adam), "adamw": _layerwise(keras.optimizers.AdamW),
              "sgd": _layerwise(keras.optimizers.SGD), "rmsprop": _layerwise(keras.optimizers.RMSprop)}


def layerwise_optimizer(name, layer_lr_factors, **options):
    """The optimiser ``name`` (adam, adamw, sgd, rmsprop) with ``options`` and per-layer factors."""
    if name not in OPTIMIZERS:
        raise CoughclfError(f"optimizer {name!r} has no per-layer learning rates; choose one of "
                            f"{', '.join(OPTIMIZERS)}")
    for layer, factor in layer_lr_factors.items():
        if factor < 0:
            raise CoughclfError(f"learning-rate factor {factor} of layer {layer!r} must be >= 0")
    return OPTIMIZERS[name](layer_lr_factors=layer_lr_factors, **options)
