"""The optimiser of a run and what steers it epoch by epoch: [optimizer], [train] jit_compile and
mixed_precision.

Shared by every task (classification and CTC): the optimiser (:func:`make_optimizer`),
the learning-rate schedule (:func:`learning_rate_at`, :func:`schedule_callback`),
the weight averaging (:func:`weight_averaging_callbacks`) and the dtype policy the model
is built and trained under (:func:`dtype_policy`).
"""

import contextlib
import math


def make_optimizer(config, layer_lr_factors=None):
    """The optimiser of [optimizer] (``weight_decay`` is decoupled, as Keras applies it).

    ``layer_lr_factors`` (``{layer name: factor}``, e.g. a pretrained backbone's
    ``optimizer.backbone_lr_factor``): those layers learn at ``lr * factor``
    (:mod:`coughclf.optimizers`).
    """
    import keras

    settings = config["optimizer"]
    options = {"learning_rate": settings["lr"], "clipnorm": settings["clipnorm"],
               "weight_decay": settings["weight_decay"] or None}
    if settings["ema"]:
        options.update(use_ema=True, ema_momentum=settings["ema"])
    if settings["name"] == "adamw":
        options["weight_decay"] = settings["weight_decay"]
    if settings["name"] in ("sgd", "rmsprop"):
        options["momentum"] = settings["momentum"]
    if layer_lr_factors:
        from coughclf.optimizers import layerwise_optimizer

        return layerwise_optimizer(settings["name"], layer_lr_factors, **options)
    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop}
    return classes[settings["name"]](**options)


def jit_compile(config):
    """Whether to XLA-compile the train step ([train] jit_compile).

    "auto" compiles on accelerators and other backends only: on CPU, TensorFlow's own kernels ran
    the models' train steps faster than XLA here (cough_crnn: ~305 vs ~495 ms of CPU per step).
    """
    setting = config["train"]["jit_compile"]
    if setting != "auto":
        return setting == "on"
    import keras

    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))


@contextlib.contextmanager
def dtype_policy(name):
    """Keras' global dtype policy set to ``name`` inside the block: models built there take it.

    ``"off"`` (or ``"float32"``) is float32. Under ``"mixed_bfloat16"`` / ``"mixed_float16"`` the
    layers compute in half precision with float32 weights, except what the models keep in float32
    (front end, softmax heads, LSTMs); ``model.compile`` wraps the optimiser of a float16 model in
    ``keras.optimizers.LossScaleOptimizer`` (dynamic loss scaling) by itself.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32" if name == "off" else name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def learning_rate_at(config, epoch):
    """The scheduled learning rate of ``epoch`` (epoch-wise, so a resumed run continues it).

    The first ``warmup_epochs`` ramp linearly up to ``lr`` (``lr · (epoch + 1) / (warmup + 1)``:
    deep recurrent stacks under CTC can stall for good when the full rate hits their random
    start); the schedule then runs over the remaining epochs.
    """
    settings = config["optimizer"]
    base, floor, warmup = settings["lr"], settings["min_lr"], settings["warmup_epochs"]
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    epoch, epochs = epoch - warmup, config["train"]["epochs"] - warmup
    if settings["schedule"] == "cosine":
        return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    if settings["schedule"] == "exponential":
        return max(floor, base * settings["decay_rate"] ** epoch)
    return base


def weight_averaging_callbacks(config):
    """``[SwapEMAWeights]`` when ``optimizer.ema`` is set, else ``[]``: placed before the callbacks
    that validate or save, so that those see the averaged weights (the resume state keeps the raw
    weights and the average, see :func:`coughclf.fitting.run_callbacks`)."""
    import keras

    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config["optimizer"]["ema"] else []


def schedule_callback(config, monitor, mode):
    """The learning-rate callback of ``[optimizer]``: ``ReduceLROnPlateau`` on ``monitor`` for
    ``schedule = "plateau"``, else :func:`learning_rate_at` epoch by epoch."""
    import keras

    settings = config["optimizer"]
    if settings["schedule"] == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=settings["decay_rate"],
                                                 patience=max(1, config["train"]["patience"] // 2),
                                                 min_lr=settings["min_lr"])
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rate_at(config, epoch))
