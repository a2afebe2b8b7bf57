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

Published weights: ``build("ast", weights=PATH)`` reads transformers'
``ASTForAudioClassification`` / ``ASTModel`` folders and the AST repository's ``.pth``
state dicts (:func:`checkpoint_options`, :func:`load_checkpoint`, through
:mod:`coughclf.models.checkpoints`), and in waveform mode computes the recipe's Kaldi
fbank with its AudioSet normalisation inside the model (:class:`coughclf.layers.KaldiFbank`).
"""

import keras
import numpy as np

from coughclf.errors import CoughclfError
from coughclf.layers.blocks import ClassTokens
from coughclf.layers.metadata import metadata_head_input
from coughclf.layers.patches import PatchEmbedding, PatchPositionalEmbedding
from coughclf.models import register_model
from coughclf.models.checkpoints import PretrainedSupport, conv2d_kernel, linear_kernel
from coughclf.models.common import classifier_head, classifier_inputs, to_image

SAMPLE_RATE = 16000
# The original's Kaldi fbank: 25 ms windows every 10 ms, 128 HTK mel bands, no band normalisation.
FRONTEND = {"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 128, "mel_scale": "htk",
            "norm": None}
NUM_TOKENS = 2  # CLS and distillation
FRONTEND_LAYERS = ("LogMelSpectrogram", "KaldiFbank")
# The published weights' features: the recipe's Kaldi fbank with its AudioSet normalisation.
PRETRAINED_FRONTEND = {"normalization": "audioset"}


def encoder_block(tokens, *, num_heads, mlp_dim, epsilon, name):
    """timm ``Block``: pre-norm self-attention and MLP, each with a residual connection."""
    width = tokens.shape[-1]
    x = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm1")(tokens)
    x = keras.layers.MultiHeadAttention(num_heads, key_dim=width // num_heads, name=f"{name}_attn")(x, x)
    tokens = keras.layers.Add(name=f"{name}_attn_residual")([tokens, x])
    x = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm2")(tokens)
    x = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp_fc1")(x)
    x = keras.layers.Dense(width, name=f"{name}_mlp_fc2")(x)
    return keras.layers.Add(name=f"{name}_mlp_residual")([tokens, x])


# --- published checkpoints -----------------------------------------------------------------------
# Two layouts: transformers' ASTForAudioClassification / ASTModel (config.json, names under
# "audio_spectrogram_transformer." or none) and the AST repository's ASTModel ("module." prefix,
# dropped when read; timm's DeiT under "v.", the head as "mlp_head.0/1").
TRANSFORMERS_PREFIXES = ("audio_spectrogram_transformer.", "")
# The original's input lengths (input_tdim) of its published recipes: AudioSet, ESC-50, Speech Commands.
RECIPE_FRAMES = (1024, 512, 128)
# The original never records heads, strides or mel bins: DeiT's heads are 64 wide, and every
# published checkpoint used fstride = tstride = 10 on 128 mel bins.
DEIT_HEAD_WIDTH = 64
ORIGINAL_STRIDE = 10
ORIGINAL_N_MELS = 128


def _layout(checkpoint):
    """``("transformers", prefix)`` or ``("original", "")`` from the tensor names."""
    for prefix in TRANSFORMERS_PREFIXES:
        if f"{prefix}embeddings.patch_embeddings.projection.weight" in checkpoint.tensors:
            return "transformers", prefix
    if "v.patch_embed.proj.weight" in checkpoint.tensors:
        return "original", ""
    raise CoughclfError(f"{checkpoint.path} is not an AST checkpoint: it has neither transformers' "
                        "embeddings.patch_embeddings nor the AST repository's v.patch_embed tensors")


def _names(layout, prefix):
    """Tensor names by role; ``block(i)`` gives block ``i``'s, with ``attention`` as q/k/v or qkv."""
    if layout == "transformers":
        embeddings = f"{prefix}embeddings."
        return {"patches": f"{embeddings}patch_embeddings.projection", "cls": f"{embeddings}cls_token",
                "dist": f"{embeddings}distillation_token", "positions": f"{embeddings}position_embeddings",
                "blocks": f"{prefix}encoder.layer.", "norm": f"{prefix}layernorm",
                "head_norm": "classifier.layernorm", "head": "classifier.dense",
                "block": lambda i: {"norm1": f"{prefix}encoder.layer.{i}.layernorm_before",
                                    "norm2": f"{prefix}encoder.layer.{i}.layernorm_after",
                                    "attention": [f"{prefix}encoder.layer.{i}.attention.attention.{part}"
                                                  for part in ("query", "key", "value")],
                                    "proj": f"{prefix}encoder.layer.{i}.attention.output.dense",
                                    "fc1": f"{prefix}encoder.layer.{i}.intermediate.dense",
                                    "fc2": f"{prefix}encoder.layer.{i}.output.dense"}}
    return {"patches": "v.patch_embed.proj", "cls": "v.cls_token", "dist": "v.dist_token",
            "positions": "v.pos_embed", "blocks": "v.blocks.", "norm": "v.norm", "head_norm": "mlp_head.0",
            "head": "mlp_head.1",
            "block": lambda i: {"norm1": f"v.blocks.{i}.norm1", "norm2": f"v.blocks.{i}.norm2",
                                "attention": f"v.blocks.{i}.attn.qkv", "proj": f"v.blocks.{i}.attn.proj",
                                "fc1": f"v.blocks.{i}.mlp.fc1", "fc2": f"v.blocks.{i}.mlp.fc2"}}


def _grid(n_mels, frames, patch_size, stride):
    return tuple((size - patch_size) // stride + 1 for size in (n_mels, frames))


def checkpoint_options(checkpoint, requested):
    """Builder options an AST checkpoint implies: sizes from tensor shapes, the rest from config.json
    (transformers) or else from ``requested`` and the original recipes (heads 64 wide, stride 10,
    128 mel bins; the frames of the recipe whose patch grid it has)."""
    layout, prefix = _layout(checkpoint)
    names, tensors = _names(layout, prefix), checkpoint.tensors
    patches = tensors[f"{names['patches']}.weight"]
    if patches.shape[1] != 1:
        raise CoughclfError(f"{checkpoint.path}: the patch embedding takes {patches.shape[1]} channels; AST "
                            "checkpoints take one (a log-mel image)")
    width, patch_size = int(patches.shape[0]), int(patches.shape[-1])
    options = {
        "width": width, "patch_size": patch_size,
        "depth": len({key[len(names["blocks"]):].split(".")[0] for key in tensors
                      if key.startswith(names["blocks"])}),
        "mlp_dim": int(tensors[f"{names['block'](0)['fc1']}.weight"].shape[0]),
        "frontend_layer": "KaldiFbank", "frontend": dict(PRETRAINED_FRONTEND),
    }
    if f"{names['head']}.weight" in tensors:
        options["num_classes"] = int(tensors[f"{names['head']}.weight"].shape[0])
    num_patches = int(tensors[names["positions"]].shape[1]) - NUM_TOKENS
    if layout == "transformers" and checkpoint.config is not None:
        config = checkpoint.config
        if config.get("hidden_act", "gelu") != "gelu" or not config.get("qkv_bias", True):
            raise CoughclfError(f"{checkpoint.path}: config.json asks for hidden_act={config.get('hidden_act')!r}, "
                                f"qkv_bias={config.get('qkv_bias')!r}; coughclf's AST has exact GELU and q/k/v biases")
        if config.get("frequency_stride", 10) != config.get("time_stride", 10):
            raise CoughclfError(f"{checkpoint.path}: frequency_stride {config.get('frequency_stride')} differs "
                                f"from time_stride {config.get('time_stride')}; coughclf's AST uses one stride")
        epsilon = float(config.get("layer_norm_eps", 1e-12))
        options.update(num_heads=int(config["num_attention_heads"]), n_mels=int(config["num_mel_bins"]),
                       frames=int(config["max_length"]), patch_stride=int(config.get("time_stride", 10)),
                       layer_norm_epsilon=epsilon, head_norm_epsilon=epsilon)
    else:
        # Not in the file: the caller's n_mels, stride and heads, else the published recipes'.
        n_mels = int(requested.get("n_mels", ORIGINAL_N_MELS))
        stride = int(requested.get("patch_stride", ORIGINAL_STRIDE))
        t_dim = num_patches // _grid(n_mels, patch_size, patch_size, stride)[0]
        frames = next((frames for frames in RECIPE_FRAMES if _grid(n_mels, frames, patch_size, stride)[1] == t_dim),
                      patch_size + (t_dim - 1) * stride)
        options.update(num_heads=max(1, width // DEIT_HEAD_WIDTH), n_mels=n_mels, frames=frames, patch_stride=stride)
    grid = _grid(options["n_mels"], options["frames"], patch_size, options["patch_stride"])
    if grid[0] * grid[1] != num_patches:
        raise CoughclfError(f"{checkpoint.path}: the positional embedding covers {num_patches} patches, but "
                            f"n_mels={options['n_mels']}, frames={options['frames']}, stride "
                            f"{options['patch_stride']} give {grid[0]} x {grid[1]}; give the checkpoint's "
                            "n_mels and patch_stride (or its config.json)")
    return options


def _reshaped(value, shape):
    """``value`` in ``shape``, or as it is when the sizes differ (the mapper then names both shapes)."""
    return value.reshape(shape) if value.size == np.prod(shape) else value


def load_checkpoint(model, checkpoint, native_options, mapper):
    """Assign an AST checkpoint (either layout) to ``model``; resize positions for another grid."""
    layout, prefix = _layout(checkpoint)
    names = _names(layout, prefix)

    def weight_and_bias(source, target, transform=lambda value: value):
        mapper.assign(target, [(f"{source}.weight", transform(mapper.take(f"{source}.weight"))),
                               (f"{source}.bias", mapper.take(f"{source}.bias"))])

    weight_and_bias(names["patches"], "patch_embedding", conv2d_kernel)
    tokens = np.concatenate([mapper.take(names["cls"])[0], mapper.take(names["dist"])[0]])
    mapper.assign("cls_dist_tokens", [(names["cls"], tokens)])
    _load_positions(model, mapper, names["positions"], native_options)
    width = model.get_layer("patch_embedding").embed_dim
    for index in range(sum(layer.name.endswith("_attn") for layer in model.layers)):
        block, target = names["block"](index), f"block{index}"
        attention = model.get_layer(f"{target}_attn")
        heads, head_width = attention.num_heads, attention.key_dim
        weight_and_bias(block["norm1"], f"{target}_norm1")
        weight_and_bias(block["norm2"], f"{target}_norm2")
        if layout == "transformers":
            qkv = [(f"{name}.{part}", mapper.take(f"{name}.{part}")) for name in block["attention"]
                   for part in ("weight", "bias")]
        else:  # timm's fused qkv: rows [q; k; v], each head-major
            fused = {part: np.split(mapper.take(f"{block['attention']}.{part}"), 3)
                     for part in ("weight", "bias")}
            qkv = [(f"{block['attention']}.{part}", fused[part][third]) for third in range(3)
                   for part in ("weight", "bias")]
        projected = []
        for source, value in qkv:
            kernel = source.endswith("weight")
            projected.append((source, _reshaped(linear_kernel(value) if kernel else value,
                                                (width, heads, head_width) if kernel else (heads, head_width))))
        output = block["proj"]
        projected += [(f"{output}.weight", _reshaped(linear_kernel(mapper.take(f"{output}.weight")),
                                                     (heads, head_width, width))),
                      (f"{output}.bias", mapper.take(f"{output}.bias"))]
        mapper.assign(f"{target}_attn", projected)
        weight_and_bias(block["fc1"], f"{target}_mlp_fc1", linear_kernel)
        weight_and_bias(block["fc2"], f"{target}_mlp_fc2", linear_kernel)
    weight_and_bias(names["norm"], "norm")
    if layout == "original":
        mapper.skip_prefix("v.head", "timm's ImageNet classifiers, which AST's forward pass never uses")
    if not mapper.has(f"{names['head']}.weight"):  # transformers' ASTModel: a backbone without a head
        mapper.loaded.initialised += ["head_norm", "head"]
        return
    weight_and_bias(names["head_norm"], "head_norm")
    head = names["head"]
    mapper.assign_or_initialise("head", [(f"{head}.weight", linear_kernel(mapper.take(f"{head}.weight"))),
                                         (f"{head}.bias", mapper.take(f"{head}.bias"))])


def _load_positions(model, mapper, source, native_options):
    """The positional embedding, cut or interpolated when the model's patch grid is not the checkpoint's."""
    layer = model.get_layer("positional_embedding")
    embedding = mapper.take(source)
    grid = _grid(native_options["n_mels"], native_options["frames"], native_options["patch_size"],
                 native_options["patch_stride"])
    if grid == layer.grid or embedding.shape[-1] != layer.embedding.shape[-1]:
        mapper.assign("positional_embedding", [(source, embedding)])
        return
    layer.set_from(embedding, grid)
    mapper.loaded.resized.append(f"{source}: patch grid {grid[0]}x{grid[1]} -> {layer.grid[0]}x{layer.grid[1]}")


@register_model(
    "ast",
    report=("Report 3 (COUGHVID cough classification, 3 classes), AST (Gong et al. 2021, DeiT-base "
            "backbone); report count for the base model on 128 x 1,024 input with 527 classes"),
    report_params=86_594_063, param_difference=-402_956,
    difference_reason=("the report counts AudioSet's 527-class head (build num_classes=527); the "
                       "3-class default head has 768*3 + 3 instead of 768*527 + 527 weights (-402,956)"),
    defaults={"num_classes": 3, "input_mode": "features", "frames": 1024, "n_mels": 128,
              "sample_rate": SAMPLE_RATE, "frontend": FRONTEND},
    pretrained=PretrainedSupport(formats=("transformers", "safetensors", "pytorch"), options=checkpoint_options,
                                 load=load_checkpoint, head_layers=("head_norm", "head")))
def audio_spectrogram_transformer(
        num_classes=3, input_mode="features", *, frames=1024, n_mels=128, patch_size=16, patch_stride=10,
        depth=12, width=768, num_heads=12, mlp_dim=None, layer_norm_epsilon=1e-6, head_norm_epsilon=1e-5,
        sample_rate=SAMPLE_RATE, frontend_layer="LogMelSpectrogram", frontend=None,
        waveform_augmentation=None, spec_augmentation=None, metadata_dim=0, clip_features=False):
    """AST on a ``[frames, n_mels]`` log-mel; report 3 (ResNet18/34 + AST table), Gong et al. 2021.

    Trainable parameters: **86,594,063** for the base model as the report counts it
    (``frames=1024, n_mels=128, num_classes=527``); 86,191,107 with the 3-class default.
    ``depth``, ``width`` and ``num_heads`` shrink it (tests, quick experiments).

    Args:
        num_classes: output classes (3: healthy, symptomatic, COVID-19).
        input_mode: ``"features"`` — a log-mel ``[frames, n_mels]`` input; ``"waveform"`` —
            16 kHz audio, its features computed in the model by ``frontend_layer``, as many
            samples as give ``frames`` frames.
        frontend_layer: ``"LogMelSpectrogram"`` (``frontend``: its options, default 25 ms
            windows every 10 ms, 128 HTK mels, approximating the original's Kaldi fbank;
            ``(frames - 1) * hop_length`` samples) or ``"KaldiFbank"`` (the original's
            features exactly, :class:`coughclf.layers.kaldi.KaldiFbank`; ``frontend``: its
            options; ``400 + (frames - 1) * 160`` samples). ``weights=`` selects
            ``"KaldiFbank"`` with the AudioSet normalisation the published weights expect.
        frames: log-mel frames; the patch grid is
            ``((n_mels - patch_size) // patch_stride + 1, (frames - patch_size) // patch_stride + 1)``.
        n_mels: log-mel bands.
        patch_size: the side of the square patches (16).
        patch_stride: their step (10: overlapping).
        depth: transformer blocks.
        width: token width.
        num_heads: attention heads.
        mlp_dim: MLP width (default ``4 * width``).
        layer_norm_epsilon: ε of the blocks' and final LayerNorms (timm: 1e-6); transformers' AST
            uses its ``layer_norm_eps`` (1e-12) for both epsilons, which ``weights=`` reads from
            config.json.
        head_norm_epsilon: ε of the head's LayerNorm (PyTorch's default 1e-5).
        sample_rate: waveform sample rate in Hz (waveform mode).
        waveform_augmentation: a built augmentation layer on the waveform (waveform mode).
        spec_augmentation: a built augmentation layer on the log-mel (waveform mode).
        metadata_dim: width of an extra ``metadata`` input (age, gender, SNR…), 0 for none;
            concatenated after the head's LayerNorm, before its Linear.
        clip_features: add in-graph mean ZCR, RMS and spectral centroid (waveform mode).

    Returns a ``keras.Model`` ending in softmax class probabilities.

    Example::

        from coughclf.models import build
        model = build("ast", frames=300, depth=2, width=192, num_heads=3)  # 12 x 29 patches
        print(model.output_shape)  # (None, 3)
    """
    if frontend_layer not in FRONTEND_LAYERS:
        raise CoughclfError(f"ast: frontend_layer={frontend_layer!r}; choose one of {', '.join(FRONTEND_LAYERS)}")
    if frontend_layer == "KaldiFbank" and input_mode == "waveform":
        import inspect

        from coughclf.layers.kaldi import KaldiFbank, kaldi_samples

        unknown = sorted(set(frontend or {}) - set(inspect.signature(KaldiFbank).parameters))
        if unknown:
            raise CoughclfError(f"ast: frontend options {unknown} are not KaldiFbank's (frontend_layer='KaldiFbank'); "
                                "drop them, or the [frontend] table")
        fbank = KaldiFbank(sample_rate=sample_rate, n_mels=n_mels, **(frontend or {}), name="kaldi_fbank")
        inputs, waveform = classifier_inputs(
            input_mode, feature_shape=None, sample_rate=sample_rate, frontend=None,
            clip_seconds=kaldi_samples(frames, fbank.win_length, fbank.hop_length) / sample_rate,
            waveform_augmentation=waveform_augmentation)
        features = fbank(waveform)
        for layer in spec_augmentation or ():
            features = layer(features)
    else:
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
        tokens = encoder_block(tokens, num_heads=num_heads, mlp_dim=mlp_dim or 4 * width,
                               epsilon=layer_norm_epsilon, name=f"block{index}")
    tokens = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm")(tokens)

    # (x[:, 0] + x[:, 1]) / 2 in the original: keep the two token outputs, average them.
    class_tokens = keras.layers.Cropping1D((0, grid[0] * grid[1]), name="cls_dist_outputs")(tokens)
    pooled = keras.layers.GlobalAveragePooling1D(name="cls_dist_mean")(class_tokens)
    pooled = keras.layers.LayerNormalization(epsilon=head_norm_epsilon, name="head_norm")(pooled)
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
