"""A few training steps of a registry model under a mixed-precision dtype policy, on any backend.

:func:`train_briefly` runs in the test process (TensorFlow) and, through
``python -c`` with this folder on the path, under JAX; it returns plain JSON-ready facts
the tests assert on.
"""

import keras
import numpy as np
from model_checks import SMALL_OPTIONS, SMALL_WAVEFORM_OPTIONS, random_inputs

from coughclf.layers.frontend import FrameFeature, ShortTimeSpectrum
from coughclf.models import build, spec
from coughclf.text import NUM_CLASSES

POLICIES = ("mixed_bfloat16", "mixed_float16")
# One model per family (module of coughclf.models), in the input mode that exercises most of it in
# little time: waveforms through the front end where that stays quick. Every model: -m slow.
FAMILIES = {
    "cough_crnn": "features",  # conv blocks, BiLSTM
    "kws_parallel_cnn_lstm": "waveform",  # log-mel front end, conv ‖ BiLSTM
    "esc_cnn1d": "features",
    "resnet18": "features",
    "ast": "waveform",  # log-mel, patches, class tokens, transformer attention
    "deepspeech2_lite": "waveform",  # log-mel with lengths, masks, shared-input RNN, CTC
}
# deepspeech2_lite in waveform mode: a quarter second of 16 kHz audio, 26 frames, 13 logit frames.
SPEECH_SAMPLES = 4000


def _inputs_and_labels(model, name, input_mode, rng):
    if spec(name).task == "ctc":
        inputs = random_inputs(model, seed=0, unknown_length=SPEECH_SAMPLES if input_mode == "waveform" else 40)
        labels = rng.integers(1, NUM_CLASSES, (2, 3)).astype("int32")
    else:
        inputs = random_inputs(model, seed=0)
        labels = rng.integers(0, model.outputs[0].shape[-1], 2).astype("int32")
    return inputs, labels


def _float32_roles(model):
    """Names of the layers that must compute in float32 whatever the policy, by role."""
    roles = {"front_end": [], "recurrent": []}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (ShortTimeSpectrum, FrameFeature)):
            roles["front_end"].append(layer)
        elif isinstance(layer, keras.layers.LSTM):
            roles["recurrent"].append(layer)
    return {role: {layer.name: layer.compute_dtype for layer in layers} for role, layers in roles.items()}


def train_briefly(name, policy, input_mode, steps=2):
    """Build ``name`` under ``policy``, train ``steps`` steps on random data; what the tests check."""
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        options = (SMALL_WAVEFORM_OPTIONS if input_mode == "waveform" else SMALL_OPTIONS).get(name, {})
        if name == "deepspeech2_lite":
            options = {key: value for key, value in SMALL_OPTIONS[name].items() if key != "num_features"}
        model = build(name, input_mode=input_mode, **options)
    finally:
        keras.config.set_dtype_policy(previous)
    rng = np.random.default_rng(0)
    inputs, labels = _inputs_and_labels(model, name, input_mode, rng)
    if spec(name).task == "ctc":
        model.compile(keras.optimizers.Adam(1e-3))
    else:
        model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    losses = [float(np.asarray(model.train_on_batch(inputs, labels))) for _ in range(steps)]
    outputs = keras.tree.flatten(model(inputs, training=False))
    compute_dtypes = sorted({layer.compute_dtype for layer in model._flatten_layers(include_self=False)
                             if layer.weights})
    return {
        "losses": losses,
        "output_dtypes": [keras.backend.standardize_dtype(output.dtype) for output in outputs],
        "outputs_finite": all(bool(np.isfinite(keras.ops.convert_to_numpy(output)).all()) for output in outputs),
        "float32_roles": _float32_roles(model),
        "weighted_compute_dtypes": compute_dtypes,
        "model_policy": model.dtype_policy.name,
        "loss_scaled": isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer),
    }
