"""Published checkpoints into coughclf's Keras models: reading files, mapping tensors.

``coughclf.models.build(name, weights=PATH, **options)`` comes here for a model whose
registration carries a :class:`PretrainedSupport`:

1. :func:`read_checkpoint` reads ``PATH`` into a flat ``{name: numpy array}``: a
   transformers folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), a
   ``.safetensors`` file (read without PyTorch) or a PyTorch state dict (``.pth``, ``.pt``,
   ``.bin``: needs PyTorch, ``pip install 'coughclf[torch]'``), a ``.tflite`` model's constant
   tensors, dequantised, or a Keras 2 ``.h5`` weights file (:mod:`coughclf.pretrained`). A
   ``module.`` prefix on every name (``torch.nn.DataParallel``) is dropped.
2. The model's ``options(checkpoint, requested)`` reads the architecture (depth, width,
   classes, …) from the config or the tensor shapes; the caller's options override it.
3. The model is built, and its ``load(model, checkpoint, native_options, mapper)`` assigns
   every tensor through a :class:`TensorMapper`, which checks each shape (an error names the
   tensor and both shapes) and fails naming every tensor that nothing used.

Where the caller's options differ from the checkpoint's, two things are expected and
reported in :class:`LoadedWeights` rather than refused: a classifier for another class
count (or with a metadata input) starts from its initial weights, and a positional
embedding for another input length is cut or interpolated.

Importing this module never imports PyTorch.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from coughclf.errors import CoughclfError

FORMATS = {
    "transformers": "Hugging Face transformers folder (config.json + model.safetensors or pytorch_model.bin)",
    "safetensors": ".safetensors state dict (no PyTorch needed)",
    "pytorch": "PyTorch state dict (.pth, .pt, .bin; needs PyTorch: pip install 'coughclf[torch]')",
    "tflite": "TFLite model (.tflite; quantised weights dequantised, see coughclf.pretrained.tflite_weights)",
    "keras2_h5": "Keras 2 HDF5 weights (.h5, model.save_weights; see coughclf.pretrained.keras2_h5)",
}
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
FREEZE_CHOICES = ("none", "backbone")
# torch.nn.DataParallel saves every parameter under this prefix (the AST repository's checkpoints do).
DATA_PARALLEL_PREFIX = "module."


@dataclass
class Checkpoint:
    """A checkpoint's tensors as float32-or-integer numpy arrays, and its transformers config."""

    path: Path
    format: str
    tensors: dict
    config: dict | None = None


@dataclass
class LoadedWeights:
    """What a load did besides copying: layers left at their initial weights, tensors resized."""

    initialised: list = field(default_factory=list)  # Keras layers kept as built (e.g. a new head)
    resized: list = field(default_factory=list)  # "tensor: old shape -> new shape"
    unused: list = field(default_factory=list)  # checkpoint tensors deliberately not used


@dataclass(frozen=True)
class PretrainedSupport:
    """How a registered model takes published weights.

    Attributes:
        formats: the :data:`FORMATS` keys it reads.
        options: ``options(checkpoint, requested) -> dict`` of builder options the checkpoint
            implies; ``requested`` (the caller's options) fills in what the file does not record.
        load: ``load(model, checkpoint, native_options, mapper) -> None``: assign every tensor.
        head_layers: names of the classifier layers (trained at the full learning rate and
            never frozen; a class count other than the checkpoint's re-initialises the last).
        class_names: ``class_names() -> tuple`` of the checkpoint's own classes, in output order,
            when they are known (so that ``coughclf predict NAME:WEIGHTS`` names them), else None.
        where_to_get: the documentation that says where the published files come from, named by
            the error for a ``model.weights`` that does not exist.
    """

    formats: tuple
    options: Callable
    load: Callable
    head_layers: tuple
    class_names: Callable | None = None
    where_to_get: str = "docs/models.md, 'Pretrained backbones'"


def read_checkpoint(path):
    """Read ``path`` (a transformers folder, a ``.safetensors`` file or a PyTorch state dict)."""
    path = Path(path)
    if not path.exists():
        raise CoughclfError(f"weights {path} do not exist; give a checkpoint file (.safetensors, .pth, .bin) "
                            "or a transformers folder with config.json")
    if path.is_dir():
        config_path = path / "config.json"
        weights = next((path / name for name in TRANSFORMERS_WEIGHTS if (path / name).exists()), None)
        if not config_path.exists() or weights is None:
            raise CoughclfError(f"{path} is a folder but not a transformers model: it needs config.json and one of "
                                f"{', '.join(TRANSFORMERS_WEIGHTS)}")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise CoughclfError(f"{config_path} is not valid JSON ({error}); download the model folder again")
        return Checkpoint(path, "transformers", _read_tensors(weights), config)
    if path.suffix == ".safetensors":
        return Checkpoint(path, "safetensors", _read_tensors(path))
    if path.suffix in TORCH_SUFFIXES:
        return Checkpoint(path, "pytorch", _read_tensors(path))
    if path.suffix == ".tflite":
        from coughclf.pretrained.tflite_weights import read_tflite_weights

        return Checkpoint(path, "tflite", read_tflite_weights(path))
    if path.suffix in (".h5", ".hdf5"):
        from coughclf.pretrained.keras2_h5 import read_keras2_h5

        return Checkpoint(path, "keras2_h5", read_keras2_h5(path))
    raise CoughclfError(f"{path}: unknown checkpoint type {path.suffix!r}; give a .safetensors, .pth, .pt, .bin, "
                        ".tflite or .h5 file or a transformers folder")


def _read_tensors(path):
    tensors = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    if tensors and all(name.startswith(DATA_PARALLEL_PREFIX) for name in tensors):
        tensors = {name[len(DATA_PARALLEL_PREFIX):]: value for name, value in tensors.items()}
    return tensors


def _read_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, TypeError, ValueError) as error:
        if "bfloat16" in str(error):  # numpy has no bfloat16
            raise CoughclfError(f"{path} holds bfloat16 tensors, which numpy cannot read; save them as "
                                "float32 (or as a .pth state dict, read with PyTorch)") from error
        raise CoughclfError(f"{path}: not a .safetensors file ({error}); download it again") from error


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise CoughclfError(f"{path} is a PyTorch checkpoint and reading it needs PyTorch: "
                            "pip install 'coughclf[torch]' (or convert it to .safetensors)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or non-state-dict file
        raise CoughclfError(f"{path}: not a PyTorch state dict ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CoughclfError(f"{path} holds a {type(state).__name__}, not a state dict of tensors; save "
                            "model.state_dict() instead")
    # bfloat16 has no numpy type; float32 holds it exactly.
    return {name: (value.float() if value.dtype == torch.bfloat16 else value).numpy()
            for name, value in state.items()}


def linear_kernel(weight):
    """PyTorch ``Linear.weight`` ``[out, in]`` → Keras ``Dense`` kernel ``[in, out]``."""
    return np.ascontiguousarray(weight.T)


def conv2d_kernel(weight):
    """PyTorch ``Conv2d.weight`` ``[out, in, h, w]`` → Keras ``[h, w, in, out]``."""
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))


class TensorMapper:
    """Assigns a checkpoint's tensors to a Keras model's layers, each tensor once, every shape checked."""

    def __init__(self, checkpoint, model):
        self.checkpoint = checkpoint
        self.model = model
        self.remaining = dict(checkpoint.tensors)
        self.loaded = LoadedWeights()

    def has(self, name):
        return name in self.checkpoint.tensors

    def take(self, name):
        """The tensor ``name`` as float32, marked as used."""
        if name not in self.checkpoint.tensors:
            raise CoughclfError(f"{self.checkpoint.path}: no tensor {name!r}, which {self.model.name} needs; "
                                "is it a checkpoint of this model? (check the model name)")
        self.remaining.pop(name, None)
        return np.asarray(self.checkpoint.tensors[name], dtype=np.float32)

    def skip(self, names, why):
        """Mark tensors as deliberately unused (e.g. a classifier the model does not have)."""
        for name in names:
            if self.remaining.pop(name, None) is not None:
                self.loaded.unused.append(f"{name} ({why})")

    def skip_prefix(self, prefix, why):
        self.skip([name for name in self.remaining if name.startswith(prefix)], why)

    def assign(self, layer_name, values):
        """Set ``layer_name``'s weights (in ``layer.weights`` order) from ``[(tensor_name, array)]``."""
        layer = self.model.get_layer(layer_name)
        if len(values) != len(layer.weights):
            raise CoughclfError(f"{layer_name}: {len(values)} tensors for {len(layer.weights)} weights")
        for variable, (source, value) in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                original = tuple(self.checkpoint.tensors[source].shape)
                raise CoughclfError(
                    f"{self.checkpoint.path}: tensor {source!r} has shape {list(original)}, but "
                    f"{self.model.name}'s {variable.path} needs {list(variable.shape)} (from that tensor: "
                    f"{list(value.shape)}); build the model with the checkpoint's architecture (drop the "
                    "option that changes it)")
        for variable, (_, value) in zip(layer.weights, values):
            variable.assign(value)

    def assign_or_initialise(self, layer_name, values):
        """As :meth:`assign`, but a layer whose shapes differ keeps its initial weights (a new head)."""
        layer = self.model.get_layer(layer_name)
        if [tuple(variable.shape) for variable in layer.weights] == [value.shape for _, value in values]:
            self.assign(layer_name, values)
        else:
            self.loaded.initialised.append(layer_name)
            self.loaded.unused.extend(f"{source} (replaced by a new {layer_name})" for source, _ in values)

    def finish(self):
        """Fail naming every tensor that was neither assigned nor deliberately skipped."""
        if self.remaining:
            names = sorted(self.remaining)
            shown = ", ".join(names[:12]) + (f" … ({len(names)} in all)" if len(names) > 12 else "")
            raise CoughclfError(f"{self.checkpoint.path}: {len(names)} tensors map to nothing in "
                                f"{self.model.name}: {shown}; is it a checkpoint of this model?")
        return self.loaded


def load_pretrained(model_spec, path, options, freeze="none"):
    """``(model, LoadedWeights)``: ``model_spec``'s model built for the checkpoint at ``path``.

    ``options`` override what the checkpoint implies (e.g. ``num_classes`` for a new head,
    ``frames`` for another clip length). ``freeze="backbone"`` makes every layer but the
    head untrainable.
    """
    support = model_spec.pretrained
    if support is None:
        raise CoughclfError(f"model {model_spec.name!r} takes no pretrained weights; models that do: "
                            f"{', '.join(_pretrained_models())}")
    checkpoint = read_checkpoint(path)
    if checkpoint.format not in support.formats:
        raise CoughclfError(f"{path}: {model_spec.name} reads {', '.join(support.formats)} checkpoints, "
                            f"not a {checkpoint.format} one")
    native = support.options(checkpoint, options)
    model = model_spec.builder(**{**native, **options})
    mapper = TensorMapper(checkpoint, model)
    support.load(model, checkpoint, native, mapper)
    loaded = mapper.finish()
    set_frozen(model, support.head_layers, freeze)
    return model, loaded


def _pretrained_models():
    from coughclf.models import available, spec

    return [name for name in available() if spec(name).pretrained is not None]


def layer_groups(model, head_layers):
    """``{"head": [...], "backbone": [...]}``: names of ``model``'s layers with weights.

    The head is ``head_layers`` (a registered model's ``PretrainedSupport.head_layers``); the
    backbone is every other layer with weights (front-end constants included; they are not
    trainable). The trainer scales the backbone's learning rate by these names.
    """
    with_weights = [layer.name for layer in model.layers if layer.weights]
    return {"head": [name for name in with_weights if name in head_layers],
            "backbone": [name for name in with_weights if name not in head_layers]}


def set_frozen(model, head_layers, freeze):
    """``freeze="backbone"``: every layer outside ``head_layers`` untrainable; ``"none"``: no change.

    A frozen BatchNormalization runs in inference mode (its moving statistics stay), as
    Keras does for any layer with ``trainable = False``.
    """
    if freeze not in FREEZE_CHOICES:
        raise CoughclfError(f"freeze = {freeze!r}; choose one of {', '.join(FREEZE_CHOICES)}")
    if freeze == "backbone":
        for name in layer_groups(model, head_layers)["backbone"]:
            model.get_layer(name).trainable = False
    return model
