"""Audio Spectrogram Transformer (Gong et al. 2021) for report 3 (COUGHVID, 3 classes).

The original ``ASTModel`` on a DeiT-base backbone, module for module: the log-mel
``[frames, n_mels]`` (time-major, as the original's ``fbank`` input) becomes an image
``[n_mels, frames, 1]``; ``PatchEmbedding`` cuts overlapping 16 × 16 patches with
stride 10 (128 × 1,024 → 12 × 101 = 1,212 patches of width 768); CLS and
distillation tokens are prepended and a learned positional embedding ``[1, 1214, 768]``
added; 12 pre-norm transformer blocks (LayerNorm ε 1e-6 → 12-head self-attention →
residual; LayerNorm → Linear 3072 → exact GELU → Linear 768 → residual); a final
LayerNorm (ε 1e-6); the head averages the CLS and distillation outputs and applies
``mlp_head`` = LayerNorm (PyTorch default ε 1e-5) → Linear. Dropout is 0 in the
original and left out.

Parameter count of the base model (128 × 1,024 input, 527 classes) from the original
modules, which the test checks: patch conv 1·768·16·16 + 768 = 197,376; tokens
2·768 = 1,536; positions 1,214·768 = 932,352; per block 2·1,536 (LayerNorms) +
1,771,776 (qkv) + 590,592 (proj) + 2,362,368 + 2,360,064 (MLP) = 7,087,872, × 12 =
85,054,464; final LayerNorm 1,536; head 1,536 + 768·527 + 527 = 406,799; total
**86,594,063** (timm's unused ``head``/``head_dist`` ImageNet classifiers excluded, as
in the report's count).

:func:`transfer_weights` moves a trained model's weights to one built for another
input length, cutting or interpolating the positional grid like the original does.
"""

import keras

from coughclf.layers.blocks import ClassTokens
from coughclf.layers.metadata import metadata_head_input
from coughclf.layers.patches import PatchEmbedding, PatchPositionalEmbedding
from coughclf.models import register_model
from coughclf.models.common import classifier_head, classifier_inputs, to_image

SAMPLE_RATE = 16000
# The original's Kaldi fbank: 25 ms windows every 10 ms, 128 HTK mel bands, no band normalisation.
FRONTEND = {"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 128, "mel_scale": "htk",
            "norm": None}
NUM_TOKENS = 2  # CLS and distillation


def encoder_block(tokens, *, num_heads, mlp_dim, name):
    """timm ``Block``: pre-norm self-attention and MLP, each with a residual connection."""
    width = tokens.shape[-1]
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(tokens)
    x = keras.layers.MultiHeadAttention(num_heads, key_dim=width // num_heads, name=f"{name}_attn")(x, x)
    tokens = keras.layers.Add(name=f"{name}_attn_residual")([tokens, x])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(tokens)
    x = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp_fc1")(x)
    x = keras.layers.Dense(width, name=f"{name}_mlp_fc2")(x)
    return keras.layers.Add(name=f"{name}_mlp_residual")([tokens, x])


@register_model(
    "ast",
    report=("Report 3 (COUGHVID cough classification, 3 classes), AST (Gong et al. 2021, DeiT-base "
            "backbone); report count for the base model on 128 x 1,024 input with 527 classes"),
    report_params=86_594_063, param_difference=-402_956,
    difference_reason=("the report counts AudioSet's 527-class head (build num_classes=527); the "
                       "3-class default head has 768*3 + 3 instead of 768*527 + 527 weights (-402,956)"),
    defaults={"num_classes": 3, "input_mode": "features", "frames": 1024, "n_mels": 128,
              "sample_rate": SAMPLE_RATE, "frontend": FRONTEND})
def audio_spectrogram_transformer(
        num_classes=3, input_mode="features", *, frames=1024, n_mels=128, patch_size=16, patch_stride=10,
        depth=12, width=768, num_heads=12, mlp_dim=None, sample_rate=SAMPLE_RATE, frontend=None,
        waveform_augmentation=None, spec_augmentation=None, metadata_dim=0, clip_features=False):
    """AST on a ``[frames, n_mels]`` log-mel; report 3 (ResNet18/34 + AST table), Gong et al. 2021.

    Trainable parameters: **86,594,063** for the base model as the report counts it
    (``frames=1024, n_mels=128, num_classes=527``); 86,191,107 with the 3-class default.
    ``depth``, ``width`` and ``num_heads`` shrink it (tests, quick experiments).

    Args:
        num_classes: output classes (3: healthy, symptomatic, COVID-19).
        input_mode: ``"features"`` — a log-mel ``[frames, n_mels]`` input; ``"waveform"`` —
            16 kHz audio of ``(frames - 1) * hop_length`` samples, so that the in-model
            log-mel (``frontend``: ``LogMelSpectrogram`` options, default 25 ms windows
            every 10 ms, 128 HTK mels, approximating the original's Kaldi fbank) has ``frames``.
        frames, n_mels: the log-mel shape; the patch grid is
            ``((n_mels - patch_size) // patch_stride + 1, (frames - patch_size) // patch_stride + 1)``.
        patch_size, patch_stride: square patches and their step (16 and 10: overlapping).
        depth, width, num_heads, mlp_dim: transformer blocks, token width, attention heads
            and MLP width (default ``4 * width``).
        sample_rate: waveform sample rate in Hz (waveform mode).
        waveform_augmentation, spec_augmentation: built augmentation layers (waveform mode).
        metadata_dim: width of an extra ``metadata`` input (age, gender, SNR…), 0 for none;
            concatenated after the head's LayerNorm, before its Linear.
        clip_features: add in-graph mean ZCR, RMS and spectral centroid (waveform mode).

    Returns a ``keras.Model`` ending in softmax class probabilities.

    Example::

        from coughclf.models import build
        model = build("ast", frames=300, depth=2, width=192, num_heads=3)  # 12 x 29 patches
        print(model.output_shape)  # (None, 3)
    """
    frontend = {**FRONTEND, "n_mels": n_mels, **(frontend or {})}
    clip_seconds = (frames - 1) * frontend["hop_length"] / sample_rate
    inputs, features = classifier_inputs(
        input_mode, feature_shape=(frames, n_mels), clip_seconds=clip_seconds, sample_rate=sample_rate,
        frontend=frontend, waveform_augmentation=waveform_augmentation, spec_augmentation=spec_augmentation)
    image = to_image(features)
    patch_embedding = PatchEmbedding(width, patch_size=patch_size, stride=patch_stride, name="patch_embedding")
    tokens = patch_embedding(image)
    tokens = ClassTokens(num_tokens=NUM_TOKENS, name="cls_dist_tokens")(tokens)
    grid = patch_embedding.grid_shape(n_mels, frames)
    tokens = PatchPositionalEmbedding(grid, num_extra_tokens=NUM_TOKENS, name="positional_embedding")(tokens)
    for index in range(depth):
        tokens = encoder_block(tokens, num_heads=num_heads, mlp_dim=mlp_dim or 4 * width, name=f"block{index}")
    tokens = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(tokens)

    # (x[:, 0] + x[:, 1]) / 2 in the original: keep the two token outputs, average them.
    class_tokens = keras.layers.Cropping1D((0, grid[0] * grid[1]), name="cls_dist_outputs")(tokens)
    pooled = keras.layers.GlobalAveragePooling1D(name="cls_dist_mean")(class_tokens)
    pooled = keras.layers.LayerNormalization(epsilon=1e-5, name="head_norm")(pooled)
    extra_inputs, head_input = metadata_head_input(
        pooled, inputs, input_mode=input_mode, metadata_dim=metadata_dim, clip_features=clip_features,
        sample_rate=sample_rate)
    outputs = classifier_head(head_input, num_classes, name="head")
    return keras.Model([inputs, *extra_inputs] if extra_inputs else inputs, outputs, name="ast")


def transfer_weights(source, target, mode="original"):
    """Copy ``source``'s weights into ``target``, an AST built for another input length.

    Layers are matched by name. The positional embedding is resized from the source's
    patch grid to the target's with
    :func:`coughclf.layers.patches.resize_positional_grid` (``mode="original"``: cut the
    centre of a shorter axis, interpolate a longer one bilinearly, as Gong et al.'s
    ``ASTModel``; ``"bilinear"``: always interpolate). Layers whose weight shapes differ
    (a head for another class count) keep their initial weights.

    Returns the names of the target layers that were not copied.

    Example::

        from coughclf.models import build
        from coughclf.models.ast import transfer_weights
        long = build("ast", frames=1024, depth=1, width=64, num_heads=4)
        short = build("ast", frames=300, depth=1, width=64, num_heads=4)
        print(transfer_weights(long, short))  # [] — everything copied, positions cut to 12 x 29
    """
    source_layers = {layer.name: layer for layer in source.layers}
    not_copied = []
    for layer in target.layers:
        source_layer = source_layers.get(layer.name)
        if not layer.weights:
            continue
        if isinstance(layer, PatchPositionalEmbedding) and isinstance(source_layer, PatchPositionalEmbedding):
            layer.set_from(keras.ops.convert_to_numpy(source_layer.embedding), source_layer.grid, mode=mode)
        elif source_layer is not None and _weight_shapes(source_layer) == _weight_shapes(layer):
            layer.set_weights(source_layer.get_weights())
        else:
            not_copied.append(layer.name)
    return not_copied


def _weight_shapes(layer):
    return [tuple(weight.shape) for weight in layer.weights]
