"""YAMNet (AudioSet, 521 classes) in Keras 3, and its released weights.

The published model (Plakal & Ellis, tensorflow/models research/audioset/yamnet, Apache 2.0):
16 kHz audio → :class:`~coughclf.layers.yamnet_frontend.YamnetLogMel` (64 HTK mel bands of
the 512-point STFT magnitude, ``log(mel + 0.001)``) → patches of 96 frames every 48
(0.96 s every 0.48 s) → MobileNet-v1 on each patch (a 3×3/2 convolution and 13
depthwise-separable blocks; batch norm with a shift and no scale, ε = 1e-4) → global average
pooling → the 1,024-d patch embedding → 521 sigmoid scores. Layer names are the release's
with ``/`` as ``_`` (``layer1_conv``, ``layer2_depthwise_conv_bn``, …).

The patches of a clip go through the network as one batch (``PatchesToBatch``), and come back
as ``[batch, patches, 1024]`` in the layer named ``embeddings``. What follows is the head:

* ``head="audioset"`` (the release's): the 521-way ``dense`` per patch, sigmoid
  (``patch_scores``, ``[batch, patches, 521]``), averaged over patches (``clip_scores``, the
  model's output);
* ``head="linear"`` / ``"mlp"`` (a new task): the patch embeddings pooled over patches
  (``pooling``: ``"mean"``, ``"max"``, ``"mean_max"`` (both, concatenated) or ``"attention"``
  (:class:`~coughclf.layers.blocks.AttentionPooling`)), dropout, for ``"mlp"`` one hidden
  ReLU layer, then the softmax ``classifier``.

Weights, ``build("yamnet", weights=PATH)``:

* the TF Hub / Kaggle TFLite model (``yamnet.tflite``): int8 weights with per-channel scales
  dequantised, batch norm folded into the convolutions unfolded exactly for inference
  (kernel = folded kernel, β = folded bias, moving mean 0, moving variance 1 − ε);
* the research release's ``yamnet.h5`` (Keras 2 weights of its ``yamnet_frames`` model).

Trainable parameters of the released model: **3,729,481** (3,195,456 in the MobileNet,
534,025 in the 521-way classifier), the sizes of the released weight tensors (tested).
"""

import keras
import numpy as np
from keras import ops

from coughclf.errors import CoughclfError
from coughclf.layers.blocks import AttentionPooling, InferenceBatchNormalization
from coughclf.layers.yamnet_frontend import (MEL_BANDS, MEL_MAX_HZ, MEL_MIN_HZ, PATCH_FRAMES, PATCH_HOP_FRAMES, SAMPLE_RATE, BatchToPatches,
                                             PatchesToBatch, SpectrogramPatches, YamnetLogMel, htk_mel_matrix,
                                             patch_count)
from coughclf.models import register_model
from coughclf.models.checkpoints import PretrainedSupport, linear_kernel
from coughclf.models.common import classifier_head, classifier_inputs
from coughclf.pretrained.audioset import audioset_class_names

AUDIOSET_CLASSES = 521
EMBEDDING_WIDTH = 1024
BATCH_NORM_EPSILON = 1e-4
# (stride, filters) of layer1 (a full 3x3 convolution) and layers 2-14 (depthwise-separable), as _YAMNET_LAYER_DEFS.
LAYERS = ((2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
          (1, 512), (1, 512), (2, 1024), (1, 1024))
HEADS = ("audioset", "linear", "mlp")
POOLINGS = ("mean", "max", "mean_max", "attention")
EMBEDDINGS = "embeddings"
# The layers after the embeddings, any of which a head may have (PretrainedSupport.head_layers).
HEAD_LAYERS = ("dense", "patch_scores", "clip_scores", "head_pooling", "head_dropout", "head_hidden",
               "head_hidden_dropout", "classifier")
REPORT_PARAMS = 3_729_481
TFLITE_PREFIX = "yamnet_frames/"


def batch_norm(x, name):
    """The release's batch norm: a learned shift, no scale, ε = 1e-4; always in inference mode (its
    AudioSet statistics stay when fine-tuning on a few hundred clips; the shift still learns)."""
    return InferenceBatchNormalization(center=True, scale=False, epsilon=BATCH_NORM_EPSILON, name=name)(x)


def mobilenet(images):
    """``[n, 96, 64, 1]`` patches → ``[n, 1024]`` embeddings: YAMNet's MobileNet-v1 body."""
    x = images
    for index, (stride, filters) in enumerate(LAYERS, start=1):
        layer = f"layer{index}"
        if index == 1:
            x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                    name=f"{layer}_conv")(x)
            x = keras.layers.ReLU(name=f"{layer}_relu")(batch_norm(x, f"{layer}_conv_bn"))
            continue
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                         name=f"{layer}_depthwise_conv")(x)
        x = keras.layers.ReLU(name=f"{layer}_depthwise_conv_relu")(batch_norm(x, f"{layer}_depthwise_conv_bn"))
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{layer}_pointwise_conv")(x)
        x = keras.layers.ReLU(name=f"{layer}_pointwise_conv_relu")(batch_norm(x, f"{layer}_pointwise_conv_bn"))
    return keras.layers.GlobalAveragePooling2D(name="patch_pooling")(x)


def task_head(embeddings, num_classes, *, head, pooling, hidden_units, dropout):
    """Patch embeddings ``[batch, patches, 1024]`` → class probabilities (``head`` linear or mlp)."""
    check_option("pooling", pooling, POOLINGS)
    poolers = {"mean": keras.layers.GlobalAveragePooling1D, "max": keras.layers.GlobalMaxPooling1D,
               "attention": AttentionPooling}
    if pooling == "mean_max":
        pooled = keras.layers.Concatenate(name="head_pooling")([
            keras.layers.GlobalAveragePooling1D(name="head_mean")(embeddings),
            keras.layers.GlobalMaxPooling1D(name="head_max")(embeddings)])
    else:
        pooled = poolers[pooling](name="head_pooling")(embeddings)
    x = keras.layers.Dropout(dropout, name="head_dropout")(pooled) if dropout else pooled
    if head == "mlp":
        x = keras.layers.Dense(hidden_units, activation="relu", name="head_hidden")(x)
        x = keras.layers.Dropout(dropout, name="head_hidden_dropout")(x) if dropout else x
    return classifier_head(x, num_classes)


def check_option(option, value, choices):
    if value not in choices:
        raise CoughclfError(f"yamnet: {option} = {value!r}; choose one of {', '.join(choices)} "
                            "(model options in [model] or build(...))")


def yamnet(num_classes=AUDIOSET_CLASSES, input_mode="waveform", *, clip_seconds=0.975, sample_rate=SAMPLE_RATE,
           head=None, pooling="mean", hidden_units=256, dropout=0.0, waveform_augmentation=None,
           spec_augmentation=None):
    """YAMNet: its front end, MobileNet-v1 per 0.96 s patch, and a head.

    Trainable parameters: **3,729,481** as released (``head="audioset"``, 521 classes).

    Args:
        num_classes: 521 for AudioSet; another count needs a task head.
        input_mode: ``"waveform"`` (``clip_seconds`` of 16 kHz audio, the front end inside) or
            ``"features"`` (YAMNet's log-mel ``[frames, 64]``, the frames of ``clip_seconds``).
        clip_seconds: input length; a clip is padded to whole patches as YAMNet does
            (0.975 s: one patch; 5 s: 10).
        sample_rate: 16,000, the released weights' rate.
        head: ``"audioset"`` (per-patch sigmoid scores averaged per clip), ``"linear"`` or
            ``"mlp"`` (softmax over ``num_classes`` from pooled patch embeddings); default
            ``"audioset"`` for 521 classes, else ``"linear"``.
        pooling: how a task head pools the patch embeddings: mean, max, mean_max, attention.
        hidden_units: the ``"mlp"`` head's hidden width.
        dropout: dropout before the task head's Dense layers (0: none).
        waveform_augmentation: built augmentation layers on the waveform.
        spec_augmentation: built augmentation layers on the whole log-mel before it is cut into patches.

    >>> from coughclf.models.common import trainable_params
    >>> trainable_params(yamnet())
    3729481
    >>> tuple(yamnet(10, clip_seconds=5.0, head="mlp").get_layer("embeddings").output.shape)
    (None, 10, 1024)
    """
    if sample_rate != SAMPLE_RATE:
        raise CoughclfError(f"yamnet reads {SAMPLE_RATE} Hz audio (its weights were trained at that rate), not "
                            f"{sample_rate}; set data.sample_rate = {SAMPLE_RATE} (clips are resampled)")
    head = head or ("audioset" if num_classes == AUDIOSET_CLASSES else "linear")
    check_option("head", head, HEADS)
    if head == "audioset" and num_classes != AUDIOSET_CLASSES:
        raise CoughclfError(f"yamnet: head 'audioset' has AudioSet's {AUDIOSET_CLASSES} classes, not {num_classes}; "
                            "set model.head = 'linear' or 'mlp' for a new task")
    samples = int(round(clip_seconds * sample_rate))
    patches = patch_count(samples, sample_rate)
    frames = PATCH_FRAMES + PATCH_HOP_FRAMES * (patches - 1)
    inputs, x = classifier_inputs(input_mode, feature_shape=(frames, MEL_BANDS), clip_seconds=clip_seconds,
                                  sample_rate=sample_rate, waveform_augmentation=waveform_augmentation)
    if input_mode == "waveform":
        x = YamnetLogMel(sample_rate, name="yamnet_log_mel")(x)
        for layer in spec_augmentation or ():
            x = layer(x)
    x = SpectrogramPatches(name="patches")(x)
    x = mobilenet(PatchesToBatch(name="patches_to_batch")(x))
    embeddings = BatchToPatches(patches, name=EMBEDDINGS)(x)
    if head == "audioset":
        scores = keras.layers.Dense(num_classes, name="dense")(embeddings)
        scores = keras.layers.Activation("sigmoid", dtype="float32", name="patch_scores")(scores)
        outputs = keras.layers.GlobalAveragePooling1D(name="clip_scores")(scores)
    else:
        outputs = task_head(embeddings, num_classes, head=head, pooling=pooling, hidden_units=hidden_units,
                            dropout=dropout)
    return keras.Model(inputs, outputs, name="yamnet")


def tagging_model(model):
    """An AudioSet YAMNet's ``(patch scores [batch, patches, 521], clip scores, embeddings)``."""
    try:
        patch_scores = model.get_layer("patch_scores").output
    except ValueError:
        raise CoughclfError(f"{model.name} has no AudioSet head (no layer patch_scores): it was trained for "
                            "another task; tag with build('yamnet', weights=...) instead") from None
    return keras.Model(model.inputs, [patch_scores, model.output, model.get_layer(EMBEDDINGS).output])


# --- released weights ---------------------------------------------------------------------------

def checkpoint_options(checkpoint, requested):
    """The classes of the file's classifier (the AudioSet 521)."""
    classifier = _keras2_dense(checkpoint)[0] if checkpoint.format == "keras2_h5" else f"{TFLITE_PREFIX}dense/MatMul"
    if classifier not in checkpoint.tensors:
        raise CoughclfError(f"{checkpoint.path} is not a YAMNet checkpoint (no classifier tensor {classifier!r}); "
                            "give yamnet.tflite (TF Hub / Kaggle) or the research release's yamnet.h5")
    shape = checkpoint.tensors[classifier].shape
    return {"num_classes": int(shape[0] if checkpoint.format == "tflite" else shape[1])}


def _keras2_dense(checkpoint):
    """``(kernel, bias)`` names of the Keras 2 file's classifier, auto-named ``dense`` (``dense_1`` … when
    the session that saved it had built another Dense before)."""
    kernels = sorted(name for name in checkpoint.tensors if name.startswith("dense") and name.endswith("/kernel:0"))
    kernel = kernels[0] if len(kernels) == 1 else "dense/kernel:0"
    return kernel, kernel.replace("/kernel:0", "/bias:0")


def _assign_folded(mapper, layer, kernel_name, bias_name, kernel):
    """A convolution whose batch norm TFLite folded: kernel as is, BN as ``x + β`` (mean 0, variance 1 − ε)."""
    mapper.assign(layer, [(kernel_name, kernel)])
    bias = mapper.take(bias_name)
    mapper.assign(f"{layer}_bn", [(bias_name, bias), (bias_name, np.zeros_like(bias)),
                                  (bias_name, np.full_like(bias, 1.0 - BATCH_NORM_EPSILON))])


def _ohwi_to_keras(kernel):
    """TFLite's ``[out, h, w, in]`` (and depthwise ``[1, h, w, channels]``) → Keras ``[h, w, in, out]``."""
    return np.ascontiguousarray(kernel.transpose(1, 2, 3, 0))


def load_tflite(model, checkpoint, mapper):
    prefix = TFLITE_PREFIX
    kernel = f"{prefix}layer1/conv/Conv2D"
    _assign_folded(mapper, "layer1_conv", kernel, f"{prefix}layer1/conv/bn/FusedBatchNormV3",
                   _ohwi_to_keras(mapper.take(kernel)))
    for index in range(2, len(LAYERS) + 1):
        layer = f"layer{index}"
        # The folded depthwise kernel and its bias share one name; the kernel is the 4-D one.
        named = [name for name in (f"{prefix}{layer}/depthwise_conv/bn/FusedBatchNormV3",
                                   f"{prefix}{layer}/depthwise_conv/bn/FusedBatchNormV3#2") if mapper.has(name)]
        kernel = next((name for name in named if checkpoint.tensors[name].ndim == 4), named[0] if named else
                      f"{prefix}{layer}/depthwise_conv/bn/FusedBatchNormV3")
        bias = next((name for name in named if name != kernel), kernel)
        _assign_folded(mapper, f"{layer}_depthwise_conv", kernel, bias, _ohwi_to_keras(mapper.take(kernel)))
        kernel = f"{prefix}{layer}/pointwise_conv/Conv2D"
        _assign_folded(mapper, f"{layer}_pointwise_conv", kernel, f"{prefix}{layer}/pointwise_conv/bn/FusedBatchNormV3",
                       _ohwi_to_keras(mapper.take(kernel)))
    kernel = f"{prefix}dense/MatMul"
    classes = checkpoint.tensors[kernel].shape[0]
    # The classifier's bias has no name of its own in the converted graph: the one [classes] vector left.
    biases = [name for name, value in mapper.remaining.items() if value.shape == (classes,)
              and not name.startswith(f"{prefix}layer")]
    if len(biases) != 1:
        raise CoughclfError(f"{checkpoint.path}: cannot tell the classifier's bias among {biases or 'no tensors'}; "
                            "is it YAMNet's TFLite model?")
    _assign_head(model, mapper, (kernel, linear_kernel(mapper.take(kernel))), (biases[0], mapper.take(biases[0])))
    _check_tflite_frontend(checkpoint, mapper)


def _check_tflite_frontend(checkpoint, mapper):
    """The file's own front end must be YAMNet's: its int8 mel matrix within one quantisation step of ours.
    Its constants (window, mel matrix, log offset) are not weights here: ``YamnetLogMel`` computes them."""
    for name in [name for name, value in mapper.remaining.items() if value.ndim == 2]:
        found = mapper.remaining[name]
        reference = htk_mel_matrix(MEL_BANDS, found.shape[-1], SAMPLE_RATE, MEL_MIN_HZ, MEL_MAX_HZ).T
        step = np.abs(found).max(axis=1, keepdims=True) / 127.0
        if found.shape != reference.shape or np.any(np.abs(found - reference) > step):
            raise CoughclfError(f"{checkpoint.path}: {name!r} {list(found.shape)} is not YAMNet's mel matrix "
                                "(64 HTK bands, 125-7,500 Hz); is it another model?")
    mapper.skip(list(mapper.remaining), "the file's front end; YamnetLogMel computes the same in float32")


def load_keras2(model, checkpoint, mapper):
    def batch_norm_weights(source):
        return [(f"{source}/bn/{part}:0", mapper.take(f"{source}/bn/{part}:0"))
                for part in ("beta", "moving_mean", "moving_variance")]

    def conv(source, weight="kernel"):
        name = source.replace("/", "_")
        mapper.assign(name, [(f"{source}/{weight}:0", mapper.take(f"{source}/{weight}:0"))])
        mapper.assign(f"{name}_bn", batch_norm_weights(source))

    conv("layer1/conv")
    for index in range(2, len(LAYERS) + 1):
        conv(f"layer{index}/depthwise_conv", "depthwise_kernel")
        conv(f"layer{index}/pointwise_conv")
    kernel, bias = _keras2_dense(checkpoint)
    _assign_head(model, mapper, (kernel, mapper.take(kernel)), (bias, mapper.take(bias)))


def _assign_head(model, mapper, kernel, bias):
    """The AudioSet classifier into ``dense``, or, for a task head, left out (it has no use there)."""
    if "dense" in {layer.name for layer in model.layers}:
        mapper.assign("dense", [kernel, bias])
    else:
        mapper.skip([kernel[0], bias[0]], "the AudioSet classifier; this model has a task head")


def load_checkpoint(model, checkpoint, native_options, mapper):
    (load_tflite if checkpoint.format == "tflite" else load_keras2)(model, checkpoint, mapper)



# Registered here, below the loaders its PretrainedSupport names.
register_model(
    "yamnet",
    report=("YAMNet (Plakal & Ellis, tensorflow/models research/audioset/yamnet): MobileNet-v1 on 0.96 s "
            "log-mel patches, AudioSet's 521 classes; the released model's count"),
    report_params=REPORT_PARAMS,
    defaults={"num_classes": AUDIOSET_CLASSES, "input_mode": "waveform", "clip_seconds": 0.975,
              "sample_rate": SAMPLE_RATE},
    pretrained=PretrainedSupport(formats=("tflite", "keras2_h5"), options=checkpoint_options,
                                 load=load_checkpoint, head_layers=HEAD_LAYERS, class_names=audioset_class_names,
                                 where_to_get="docs/yamnet.md, 'Where the weights come from'"),
)(yamnet)
