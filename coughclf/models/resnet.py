"""ResNet18 and ResNet34 as in torchvision, on log-mel images (report 3, COUGHVID, 3 classes).

Report 3 fine-tuned torchvision's ImageNet ResNets on cough spectrograms (healthy /
symptomatic / COVID-19) with optional clip metadata (age, gender, SNR, ZCR, RMS,
spectral centroid). The bodies here are torchvision's, layer for layer: 7×7/2 stem
(padding 3, no bias) → BatchNorm → ReLU → 3×3/2 max pool (padding 1) → four stages of
``BasicBlock``s (64, 128, 256, 512 filters; the first block of stages 2–4 has stride 2
and a 1×1 conv + BatchNorm shortcut) → global average pool → fully connected.
PyTorch's symmetric paddings are explicit ``ZeroPadding2D`` layers (Keras ``"same"``
pads asymmetrically under stride 2); zero padding before the max pool equals PyTorch's
``-inf`` padding because the pool's input is post-ReLU (non-negative). BatchNorm uses
PyTorch's ε = 1e-5 and momentum 0.1 (Keras ``momentum=0.9``); γ and β are trainable
and the moving statistics are not, so Keras' trainable count is torchvision's.

Published weights: ``build("resnet18", weights="resnet18-f37072fd.pth")`` maps a
torchvision state dict name by name (:func:`load_torchvision`) and adds torchvision's
ImageNet input normalisation inside the model (``imagenet_normalization``);
``input_mode="image"`` takes torchvision's own input, a ``[height, width, 3]`` image.
"""

import functools

import keras
import numpy as np

from coughclf.errors import CoughclfError
from coughclf.layers.metadata import metadata_head_input
from coughclf.models import register_model
from coughclf.models.checkpoints import PretrainedSupport, conv2d_kernel, linear_kernel
from coughclf.models.common import classifier_head, classifier_inputs, frames_for, padded_conv2d, to_image

STAGE_FILTERS = (64, 128, 256, 512)
STAGE_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
FRONTEND = {"n_fft": 1024, "hop_length": 512, "n_mels": 128}
# torchvision's transforms.Normalize for its ImageNet weights (RGB images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# LogMelSpectrogram's default top_db: the dB image spans [-80, 0] below each clip's maximum.
DEFAULT_TOP_DB = 80.0
CLIP_SECONDS = 10.0
SAMPLE_RATE = 16000


def conv_bn(x, filters, kernel_size, *, strides=1, name):
    """``Conv2d(kernel, stride, padding=kernel // 2, bias=False)`` → ``BatchNorm2d``.

    Initialised like torchvision: ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``.
    """
    he_fan_out = keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")
    x = padded_conv2d(x, filters, kernel_size, strides=strides, padding=kernel_size // 2, use_bias=False,
                      kernel_initializer=he_fan_out, name=f"{name}_conv")
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)


def basic_block(x, filters, *, strides=1, name):
    """torchvision ``BasicBlock``: two 3×3 conv + BN, identity (or 1×1 conv + BN) shortcut, ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides=strides, name=f"{name}_downsample")
    y = conv_bn(x, filters, 3, strides=strides, name=f"{name}_1")
    y = keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = conv_bn(y, filters, 3, name=f"{name}_2")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def stem(x):
    """7×7/2 conv (padding 3, no bias) → BN → ReLU → 3×3/2 max pool (padding 1)."""
    x = conv_bn(x, 64, 7, strides=2, name="stem")
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)


def _resnet(blocks_per_stage, name, *, num_classes, input_mode, channels, n_mels, frames, image_size,
            clip_seconds, sample_rate, frontend, imagenet_normalization, waveform_augmentation,
            spec_augmentation, metadata_dim, clip_features, band_statistics):
    """Shared body of :func:`resnet18` and :func:`resnet34` (see their docstrings for the options)."""
    if channels not in (1, 3):
        raise CoughclfError(f"{name}: channels must be 1 (the log-mel image) or 3 (repeated, as "
                            f"ImageNet weights expect), not {channels!r}")
    if (image_size is not None) != (input_mode == "image"):
        raise CoughclfError(f"{name}: input_mode='image' and image_size=(height, width) go together "
                            f"(got input_mode={input_mode!r}, image_size={image_size!r})")
    if imagenet_normalization and channels != 3:
        raise CoughclfError(f"{name}: imagenet_normalization needs channels=3 (ImageNet's RGB statistics)")
    if band_statistics and input_mode == "image":
        raise CoughclfError(f"{name}: band_statistics are statistics of the log-mel; an image input has none "
                            "(use input_mode='waveform' or 'features')")
    features = None
    if input_mode == "image":
        inputs, image = classifier_inputs("features", feature_shape=(*image_size, channels), clip_seconds=None,
                                          name="image")
    else:
        frontend = {**FRONTEND, "n_mels": n_mels, **(frontend or {})}
        inputs, features = classifier_inputs(
            input_mode, feature_shape=(frames, n_mels), clip_seconds=clip_seconds, sample_rate=sample_rate,
            frontend=frontend, waveform_augmentation=waveform_augmentation,
            spec_augmentation=spec_augmentation)
        image = to_image(features)
        if imagenet_normalization:
            # dB below the clip's maximum ([-top_db, 0]) onto an image's [0, 1] range.
            top_db = frontend.get("top_db") or DEFAULT_TOP_DB
            image = keras.layers.Rescaling(1.0 / top_db, offset=1.0, name="decibels_to_unit")(image)
        if channels == 3:
            image = keras.layers.Concatenate(name="to_three_channels")([image, image, image])
    if imagenet_normalization:
        image = keras.layers.Normalization(mean=IMAGENET_MEAN, variance=np.square(IMAGENET_STD).tolist(),
                                           name="imagenet_normalization")(image)

    x = stem(image)
    for stage, (filters, blocks) in enumerate(zip(STAGE_FILTERS, blocks_per_stage), start=1):
        for block in range(blocks):
            strides = 2 if stage > 1 and block == 0 else 1
            x = basic_block(x, filters, strides=strides, name=f"layer{stage}_{block}")
    pooled = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)

    extra_inputs, head_input = metadata_head_input(
        pooled, inputs, input_mode=input_mode, metadata_dim=metadata_dim, clip_features=clip_features,
        sample_rate=sample_rate, band_statistics=features if band_statistics else None)
    outputs = classifier_head(head_input, num_classes, name="fc")
    return keras.Model([inputs, *extra_inputs] if extra_inputs else inputs, outputs, name=name)


def torchvision_options(checkpoint, requested, name):
    """Builder options a torchvision ResNet state dict implies: its channels and classes, and
    ImageNet input normalisation for a 3-channel stem."""
    tensors = checkpoint.tensors
    if "conv1.weight" not in tensors or "fc.weight" not in tensors:
        raise CoughclfError(f"{checkpoint.path} is not a torchvision ResNet state dict (no conv1.weight / "
                            "fc.weight); give a file like resnet18-f37072fd.pth")
    if "layer1.0.conv3.weight" in tensors:
        raise CoughclfError(f"{checkpoint.path} has Bottleneck blocks (ResNet-50 or deeper); {name} takes "
                            "torchvision's resnet18 or resnet34 weights")
    blocks = tuple(len({key.split(".")[1] for key in tensors if key.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    if blocks != STAGE_BLOCKS[name]:
        other = next((model for model, shape in STAGE_BLOCKS.items() if shape == blocks), "another ResNet")
        raise CoughclfError(f"{checkpoint.path} has {blocks} blocks per stage, a {other} checkpoint; "
                            f"{name} has {STAGE_BLOCKS[name]}")
    channels = int(tensors["conv1.weight"].shape[1])
    return {"channels": channels, "num_classes": int(tensors["fc.weight"].shape[0]),
            "imagenet_normalization": channels == 3}


def load_torchvision(model, checkpoint, native_options, mapper):
    """torchvision names → this module's layers; ``num_batches_tracked`` (a counter) is not a weight."""
    def conv(source, target):
        mapper.assign(target, [(f"{source}.weight", conv2d_kernel(mapper.take(f"{source}.weight")))])

    def batch_norm(source, target):
        parts = ("weight", "bias", "running_mean", "running_var")
        mapper.assign(target, [(f"{source}.{part}", mapper.take(f"{source}.{part}")) for part in parts])
        mapper.skip([f"{source}.num_batches_tracked"], "BatchNorm's step counter")

    conv("conv1", "stem_conv")
    batch_norm("bn1", "stem_bn")
    for stage, blocks in enumerate(STAGE_BLOCKS[model.name], start=1):
        for block in range(blocks):
            source, target = f"layer{stage}.{block}", f"layer{stage}_{block}"
            for index in (1, 2):
                conv(f"{source}.conv{index}", f"{target}_{index}_conv")
                batch_norm(f"{source}.bn{index}", f"{target}_{index}_bn")
            if mapper.has(f"{source}.downsample.0.weight"):
                conv(f"{source}.downsample.0", f"{target}_downsample_conv")
                batch_norm(f"{source}.downsample.1", f"{target}_downsample_bn")
    mapper.assign_or_initialise("fc", [("fc.weight", linear_kernel(mapper.take("fc.weight"))),
                                       ("fc.bias", mapper.take("fc.bias"))])


def _pretrained(name):
    return PretrainedSupport(formats=("safetensors", "pytorch"),
                             options=functools.partial(torchvision_options, name=name),
                             load=load_torchvision, head_layers=("fc",))


_DEFAULTS = {"num_classes": 3, "input_mode": "features", "channels": 1, "n_mels": FRONTEND["n_mels"],
             "frames": frames_for(CLIP_SECONDS, SAMPLE_RATE, FRONTEND["hop_length"]),
             "clip_seconds": CLIP_SECONDS, "sample_rate": SAMPLE_RATE, "frontend": FRONTEND}
_REPORT = ("Report 3 (COUGHVID cough classification, 3 classes), ResNet{depth} as in torchvision "
           "(He et al. 2016); report count for torchvision's 3-channel, 1,000-class configuration")
_DIFFERENCE = ("the report counts torchvision's configuration (input_mode='image', channels=3, "
               "num_classes=1000, image_size=(224, 224)); the audio default has a 1-channel stem conv (-6,272) and a "
               "3-class fc (-511,461)")


@register_model("resnet18", report=_REPORT.format(depth=18), report_params=11_689_512,
                param_difference=-517_733, difference_reason=_DIFFERENCE, defaults=_DEFAULTS,
                pretrained=_pretrained("resnet18"))
def resnet18(num_classes=3, input_mode="features", *, channels=1, n_mels=128, frames=_DEFAULTS["frames"],
             image_size=None, clip_seconds=CLIP_SECONDS, sample_rate=SAMPLE_RATE, frontend=None,
             imagenet_normalization=False, waveform_augmentation=None, spec_augmentation=None, metadata_dim=0,
             clip_features=False, band_statistics=False):
    """ResNet18 (torchvision ``resnet18``) on a log-mel image; report 3 (ResNet18/34 + AST table).

    Stages of ``[2, 2, 2, 2]`` BasicBlocks. Trainable parameters: **11,689,512** in
    torchvision's configuration (``input_mode="image", channels=3, num_classes=1000,
    image_size=(224, 224)``),
    the report's count; 11,171,779 with the defaults (1 channel, 3 classes).

    Args:
        num_classes: output classes (3: healthy, symptomatic, COVID-19).
        input_mode: ``"features"`` — a log-mel ``[frames, n_mels]`` input; ``"waveform"`` —
            ``clip_seconds`` of 16 kHz audio, log-mel computed in the model (``frontend``:
            ``LogMelSpectrogram`` options, default n_fft 1024, hop 512, 128 mels);
            ``"image"`` — a channels-last ``[height, width, channels]`` image (``image_size``),
            torchvision's own input (an input named ``image``).
        channels: 1 — the mel image as is; 3 — the mel image repeated into 3 channels (so an
            ImageNet stem fits), or, in image mode, an RGB image.
        n_mels: mel bands of the log-mel in features mode.
        frames: its frames (``None``: any length).
        image_size: ``(height, width)`` of the image in ``input_mode="image"``.
        imagenet_normalization: torchvision's ImageNet input normalisation inside the model
            (``(x - mean) / std`` per RGB channel; needs ``channels=3``), which ImageNet weights
            expect: an image input in [0, 1]; a log-mel in dB below its maximum is first mapped
            from ``[-top_db, 0]`` onto [0, 1]. ``build(..., weights=torchvision file)`` sets it.
        clip_seconds: the waveform input's length in waveform mode.
        sample_rate: its sample rate in Hz.
        waveform_augmentation: a built augmentation layer on the waveform (waveform mode).
        spec_augmentation: a built augmentation layer on the log-mel (waveform mode).
        metadata_dim: width of an extra ``metadata`` input (age, gender, SNR…), 0 for none.
        clip_features: add in-graph mean ZCR, RMS and spectral centroid of the input
            waveform (waveform mode); see :mod:`coughclf.layers.metadata`.
        band_statistics: add each mel band's mean and standard deviation over time
            (standardised; the classical baseline's features) to the pooled embedding
            before ``fc``: ``2 * n_mels * num_classes`` more weights.

    Returns a ``keras.Model`` ending in softmax class probabilities.

    Example::

        from coughclf.models import build
        model = build("resnet18", input_mode="image", channels=3, num_classes=1000, image_size=(224, 224))
        print(model.count_params())  # 11,689,512 trainable + 9,600 BatchNorm moving statistics
    """
    return _resnet(STAGE_BLOCKS["resnet18"], "resnet18", **locals())  # locals(): exactly the options


@register_model("resnet34", report=_REPORT.format(depth=34), report_params=21_797_672,
                param_difference=-517_733, difference_reason=_DIFFERENCE, defaults=_DEFAULTS,
                pretrained=_pretrained("resnet34"))
def resnet34(num_classes=3, input_mode="features", *, channels=1, n_mels=128, frames=_DEFAULTS["frames"],
             image_size=None, clip_seconds=CLIP_SECONDS, sample_rate=SAMPLE_RATE, frontend=None,
             imagenet_normalization=False, waveform_augmentation=None, spec_augmentation=None, metadata_dim=0,
             clip_features=False, band_statistics=False):
    """ResNet34 (torchvision ``resnet34``) on a log-mel image; report 3 (ResNet18/34 + AST table).

    Stages of ``[3, 4, 6, 3]`` BasicBlocks. Trainable parameters: **21,797,672** in
    torchvision's configuration (``input_mode="image", channels=3, num_classes=1000,
    image_size=(224, 224)``), the report's count; 21,279,939 with the defaults (1 channel, 3 classes). Options as
    :func:`resnet18`.

    Example::

        from coughclf.models import build
        model = build("resnet34", input_mode="waveform", metadata_dim=3, clip_features=True)
        print([tensor.name for tensor in model.inputs])  # ['audio', 'metadata']
    """
    return _resnet(STAGE_BLOCKS["resnet34"], "resnet34", **locals())  # locals(): exactly the options

