"""Edge and server export: TFLite with built-in ops only, SavedModel for TensorFlow Serving.

A trained model (a run folder's ``best.keras``, or any coughclf ``keras.Model``) is
rebuilt for inference before conversion:

* every STFT front end gets an STFT that TFLite runs with builtins (:func:`export_stft`):
  a power-of-two ``n_fft`` keeps ``stft="fft"`` (builtin ``RFFT2D``), any other size — or
  ``stft="matmul"`` on request, for runtimes without ``RFFT2D`` — multiplies the frames
  by a DFT matrix (``FULLY_CONNECTED``);
* log-mel front ends get the banded mel projection (``mel_projection="banded"`` of
  :class:`coughclf.layers.frontend.LogMelSpectrogram`, same numbers): kws_cnn's dense
  513 x 128 filterbank (263 KB) would otherwise stay float in an int8 file and outweigh
  the quantised network (kws_cnn int8 file: 51 % of float32 with it, 29.8 % without);
* front-end layers take their constants from their config; the trained weights of every
  other layer are copied over by name;
* recurrent layers are unrolled over their fixed sequence length (plain builtin ops,
  which int8 quantisation handles, instead of a ``WHILE`` loop);
* the input is one clip of raw 16 kHz waveform, batch 1, and the output the class
  probabilities (the speech model: per-frame log-probabilities, see
  :func:`coughclf.models.deepspeech.inference_model`).

Conversion goes through Keras 3's ``model.export(..., format="tf_saved_model")`` and
``tf.lite.TFLiteConverter.from_saved_model`` with ``TFLITE_BUILTINS`` only, and the
flatbuffer's operator codes are checked afterwards (:func:`flatbuffer_operators`): a
custom or Flex op is an error, never a silent fallback.

Quantisation (``quantize=``):

* ``"float16"`` — weights stored as float16, computed in float32;
* ``"dynamic"`` — int8 weights of convolutions and dense layers, their activations
  quantised on the fly. The banded mel projection is a gather, multiply and sum, which
  have no such hybrid kernels, so the log-mel front end stays float (kws_cnn on FSDD:
  95.7 % as in float32; with the dense filterbank, whose power-spectrum input got
  quantised, it was 44 %). A DFT-matrix STFT (``stft="matmul"``) is a dense layer and
  does get quantised, at no cost on FSDD (kws_cnn: 96.7 %);
* ``"int8"`` — full-integer body calibrated on a representative set (by default a few
  hundred windows of the run's training split) while the front end stays float:
  the power spectrum spans ~100 dB, far beyond int8's 48 dB, so every op of the
  log-mel / frame-feature layers up to and including the dB conversion runs in
  float32 and quantisation starts at the dB image, whose 80 dB range int8 resolves
  in 0.3 dB steps. Recurrent layers stay float too: quantisation error compounds over
  their unrolled steps (measured on FSDD, see :func:`_stays_float`).

Next to each exported file a sidecar JSON (:func:`sidecar_path`) records the labels,
sample rate, clip length, front-end parameters, task, model name, quantisation and
input/output details, so :mod:`coughclf.predict` needs nothing else.

Example::

    from coughclf.export import export_tflite
    path = export_tflite("saved_models/kws_cnn-20250101-120000", "kws_cnn.tflite", quantize="int8")
"""

import re
import tempfile
from pathlib import Path

import numpy as np

from coughclf import __version__
from coughclf.errors import CoughclfError
from coughclf.files import atomic_path, read_json, write_bytes, write_json

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
STFT_CHOICES = ("auto", "fft", "matmul")
FORMATS = ("tflite", "savedmodel")
METADATA_FORMAT = 1
REPRESENTATIVE_WINDOWS = 200
SAVEDMODEL_METADATA = "coughclf.json"
# TFLite marks custom operators with this builtin code; Flex ops are custom ops named "Flex...".
_CUSTOM_CODE = 32


def sidecar_path(model_path):
    """Where the metadata of ``model_path`` lives: ``X.tflite`` → ``X.tflite.json``; a SavedModel
    folder keeps it inside as ``coughclf.json``."""
    model_path = Path(model_path)
    if model_path.is_dir():
        return model_path / SAVEDMODEL_METADATA
    return model_path.with_name(model_path.name + ".json")


# --- the model to export -------------------------------------------------------------------------

def load_trained(source):
    """``(model, run_dir or None)`` from a run folder, a ``coughclf cv`` folder (its fold ensemble,
    :mod:`coughclf.ensemble`), a ``.keras`` file or a ``keras.Model``."""
    import keras

    from coughclf.ensemble import is_cv_folder, load_fold_ensemble
    from coughclf.model_files import load_model_file

    if isinstance(source, keras.Model):
        return source, None
    source = Path(source)
    if is_cv_folder(source):
        _register_custom_objects()
        return load_fold_ensemble(source), source
    run_dir = source if source.is_dir() else None
    model_path = source / "best.keras" if run_dir else source
    if not model_path.exists():
        where = f"{source} has no best.keras" if run_dir else f"{source} does not exist"
        raise CoughclfError(f"{where}; give a run folder written by 'coughclf train' or a .keras file")
    _register_custom_objects()
    return load_model_file(model_path), run_dir  # a damaged file or a Lambda layer: a clear error


def _register_custom_objects():
    """Import every module that registers a serialisable layer, so ``load_model`` finds them."""
    import coughclf.ctc  # noqa: F401
    import coughclf.layers  # noqa: F401
    from coughclf import models

    models.available()


def export_stft(n_fft, stft="auto"):
    """The STFT mode that converts to TFLite builtins for ``n_fft``.

    ``"auto"``: ``"fft"`` when ``n_fft`` is a power of two (TFLite's builtin ``RFFT2D``:
    no DFT matrix in the file, ~5x smaller for kws_cnn), else ``"matmul"``. Force
    ``"matmul"`` for runtimes without ``RFFT2D`` (e.g. TFLite Micro).
    """
    if stft not in STFT_CHOICES:
        raise CoughclfError(f"unknown STFT mode {stft!r} for export; choose one of {', '.join(STFT_CHOICES)}")
    if stft != "auto":
        return stft
    return "fft" if n_fft & (n_fft - 1) == 0 else "matmul"


def _inference_config(config, stft):
    """A layer config with a convertible STFT, a banded mel projection, recurrent layers unrolled and
    float32 computation (nested configs too)."""
    if isinstance(config, dict):
        config = {key: _inference_config(value, stft) for key, value in config.items()}
        if _is_mixed_policy(config.get("dtype")):
            # A mixed-precision run exports as float32 (its weights are float32 already);
            # --quantize float16 halves them as for any run.
            config["dtype"] = "float32"
        if "stft" in config:
            config["stft"] = export_stft(int(config["n_fft"]), stft)
        if "n_mels" in config:
            config["mel_projection"] = "banded"
        if "unroll" in config:
            config["unroll"] = True
        return config
    if isinstance(config, list):
        return [_inference_config(value, stft) for value in config]
    return config


def _is_mixed_policy(dtype):
    """Whether a layer config's ``dtype`` is a mixed-precision policy (its name, or its serialised form)."""
    name = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    return isinstance(name, str) and name.startswith("mixed_")


def _is_front_end(layer):
    from coughclf.layers.frontend import FrameFeature, ShortTimeSpectrum

    return isinstance(layer, (ShortTimeSpectrum, FrameFeature))


def inference_model(model, input_length=None, stft="auto"):
    """The convertible inference build of ``model`` with its trained weights.

    Front-end layers are rebuilt with the STFT of :func:`export_stft` (their weights
    are constants computed from the config), recurrent layers with ``unroll=True``; every other
    layer gets ``model``'s weights. A CTC model becomes its fixed-length, mask-free
    inference model first (``input_length`` samples; required for it).
    """
    import keras

    from coughclf.ctc import CTCModel
    from coughclf.ensemble import ensemble_members

    members = ensemble_members(model)
    if members:  # an ensemble: the same graph around each member's inference build (the other layers,
        # window cuts and averages, hold no weights and are reused as they are)
        builds = {member.name: inference_model(member, input_length, stft) for member in members}
        return keras.models.clone_model(model, clone_function=lambda layer: builds.get(layer.name, layer))
    if isinstance(model, CTCModel):
        from coughclf.models.deepspeech import inference_model as ctc_inference_model

        if input_length is None:
            raise CoughclfError("exporting a speech (CTC) model needs its fixed input length in samples")
        model = ctc_inference_model(model, input_length)

    def rebuild(layer):
        return layer.__class__.from_config(_inference_config(layer.get_config(), stft))

    clone = keras.models.clone_model(model, clone_function=rebuild)
    trained = {layer.name: layer for layer in model.layers}
    for layer in clone.layers:
        if layer.weights and not _is_front_end(layer):
            layer.set_weights(trained[layer.name].get_weights())
    return clone


def _signature(model, batch_size):
    """``tf.TensorSpec``s of ``model``'s inputs, in its input structure, with a fixed batch."""
    import tensorflow as tf
    from keras import tree

    def spec(tensor):
        name = tensor.name.split(":")[0]
        return tf.TensorSpec((batch_size, *tensor.shape[1:]), tensor.dtype, name=name)

    return [tree.map_structure(spec, model.input)]


def _export_saved_model(model, directory, batch_size):
    import keras

    # On JAX the exported function would otherwise update the model's state as training does: the
    # seed counters of augmentation and dropout, uint32 variables TFLite cannot assign. Inference
    # updates no state, so it is exported as static.
    static = {"is_static": True} if keras.backend.backend() == "jax" else {}
    model.export(str(directory), format="tf_saved_model", input_signature=_signature(model, batch_size),
                 verbose=False, **static)


def describe(model, run_dir=None, labels=None, quantize="none", task=None):
    """The sidecar metadata of ``model`` (the inference build) as a dict."""
    config = _run_config(run_dir)
    front_end = next((layer for layer in model.layers if _is_front_end(layer)), None)
    inputs = model.inputs
    signal = inputs[0]
    if len(signal.shape) != 2 or signal.shape[1] is None:
        raise CoughclfError(f"{model.name} takes input {tuple(signal.shape)}; export needs a raw-waveform "
                            "model of fixed length (input_mode='waveform', as 'coughclf train' builds)")
    if task is None:
        task = "ctc" if "log_probs" in {layer.name for layer in model.layers} else "classification"
    outputs = model.outputs
    if labels is None and task == "classification":
        labels = _run_labels(run_dir) or [str(index) for index in range(outputs[0].shape[-1])]
    sample_rate = int(front_end.sample_rate) if front_end is not None else int(
        (config or {}).get("data", {}).get("sample_rate", 16000))
    frontend_config = None
    if front_end is not None:
        frontend_config = {key: value for key, value in front_end.get_config().items()
                           if key not in ("name", "trainable", "dtype")}
        frontend_config["layer"] = type(front_end).__name__
    metadata = {
        "format": METADATA_FORMAT,
        "coughclf_version": __version__,
        "model": (config or {}).get("model", {}).get("name") or model.name.removesuffix("_inference"),
        "task": task,
        "labels": labels,
        "sample_rate": sample_rate,
        "clip_samples": int(signal.shape[1]),
        "clip_seconds": int(signal.shape[1]) / sample_rate,
        "frontend": frontend_config,
        "quantization": quantize,
        "inputs": [{"name": tensor.name.split(":")[0], "shape": [1, *tensor.shape[1:]], "dtype": str(tensor.dtype)}
                   for tensor in inputs],
        "outputs": [{"shape": [1, *tensor.shape[1:]], "dtype": "float32",
                     "meaning": "log_probs" if task == "ctc" else "probabilities"} for tensor in outputs],
        "source": str(run_dir) if run_dir else None,
    }
    if task == "ctc":
        from coughclf.text import CHARACTERS

        metadata["characters"] = CHARACTERS
    return metadata


def _run_config(run_dir):
    """The run's config through ``load_config`` (defaults filled in, checked), or None without a run."""
    if run_dir is None or not (Path(run_dir) / "config.toml").exists():
        return None
    from coughclf.runs import run_config

    return run_config(run_dir)


def _run_labels(run_dir):
    from coughclf.ensemble import ensemble_info, is_cv_folder

    if run_dir is None:
        return None
    if is_cv_folder(run_dir):
        return ensemble_info(run_dir)["labels"]
    training = Path(run_dir) / "training.json"
    if training.exists():
        return read_json(training).get("classes")
    return None


# --- TFLite --------------------------------------------------------------------------------------

def operator_details(model_content):
    """Every operator of a ``.tflite`` flatbuffer's main graph, read from the flatbuffer itself.

    Each is ``{"op_name", "inputs", "outputs"}``, the tensors as ``{"name", "dtype"}`` (a numpy
    dtype name; optional inputs left out). Builtins appear under their schema name
    (``"CONV_2D"``), custom operators as ``"CUSTOM:name"`` (Flex ops are ``"CUSTOM:Flex..."``).
    Read through LiteRT's generated flatbuffer schema, which is public, where the
    interpreter gives operators only through private methods.
    """
    from ai_edge_litert import schema_py_generated as schema

    builtin_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    type_names = {value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(bytearray(model_content), 0)
    codes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        codes.append(f"CUSTOM:{code.CustomCode().decode()}" if builtin == _CUSTOM_CODE
                     else builtin_names.get(builtin, f"BUILTIN_{builtin}"))
    graph = model.Subgraphs(0)

    def tensors(indices):
        return [{"name": graph.Tensors(i).Name().decode(), "dtype": type_names[graph.Tensors(i).Type()]}
                for i in indices if i >= 0]

    operators = []
    for index in range(graph.OperatorsLength()):
        operator = graph.Operators(index)
        operators.append({"op_name": codes[operator.OpcodeIndex()],
                          "inputs": tensors(operator.InputsAsNumpy()) if operator.InputsLength() else [],
                          "outputs": tensors(operator.OutputsAsNumpy()) if operator.OutputsLength() else []})
    return operators


def flatbuffer_operators(model_content):
    """The sorted names of the operators a ``.tflite`` flatbuffer uses (see :func:`operator_details`)."""
    return sorted({operator["op_name"] for operator in operator_details(model_content)})


def check_builtin_only(model_content, what):
    """Raise if the flatbuffer needs any custom or Flex operator."""
    custom = [name for name in flatbuffer_operators(model_content) if name.startswith("CUSTOM:")]
    if custom:
        raise CoughclfError(f"{what} needs non-builtin TFLite ops {custom}; it would need the Flex delegate. "
                            "Report the model and options that produced it")


def _stays_float(layer):
    """Layers int8 breaks: the front end (~100 dB power range) and recurrent layers (error compounds
    over the unrolled steps: kws_parallel_cnn_lstm fell from 90 % to 30 % on FSDD with an int8 BiLSTM)."""
    import keras

    from coughclf.layers.rnn import SharedInputBiRNN

    return _is_front_end(layer) or isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional,
                                                      SharedInputBiRNN))


def float_nodes(model_content, model, float_layers=()):
    """Names of the op outputs of ``model``'s layers that stay float in int8 (:func:`_stays_float`, and the
    layers named in ``float_layers``)."""
    layer_names = [layer.name for layer in model.layers if _stays_float(layer) or layer.name in float_layers]
    if not layer_names:
        return []
    pattern = re.compile(r"(^|/)(" + "|".join(map(re.escape, layer_names)) + r")(_\d+)?/")
    nodes = []
    for operator in operator_details(model_content):
        for tensor in operator["outputs"]:
            if any(pattern.search(part) for part in tensor["name"].split(";")):
                nodes.append(tensor["name"])
    return nodes


def representative_from_run(run_dir, model, count=REPRESENTATIVE_WINDOWS, seed=0):
    """Up to ``count`` inputs of ``model`` (batch 1) from the run's training split, clips drawn at random.

    Returns a list of input lists in the model's input order (audio, then metadata if any).
    A CV folder (a fold ensemble) calibrates on its first fold's training split.
    """
    from coughclf.ensemble import fold_runs, is_cv_folder
    from coughclf.inputs import fit_metadata_encoding, input_seconds, make_inputs, model_input, open_data
    from coughclf.runs import run_config

    run_dir = fold_runs(run_dir)[0] if is_cv_folder(run_dir) else Path(run_dir)
    config = run_config(run_dir)
    cache = open_data(config)
    train_ids = read_json(run_dir / "split.json")["train"]
    windows = config["data"]["windows"] or 1
    rng = np.random.default_rng(seed)
    chosen = list(rng.permutation(train_ids)[: max(1, -(-count // windows))])
    metadata = None
    if config["data"]["metadata"]:
        metadata_path = run_dir / "metadata.json"
        rows = {row["id"]: row for row in cache.manifest}
        metadata = (read_json(metadata_path) if metadata_path.exists() else
                    fit_metadata_encoding([rows[i] for i in train_ids], config["data"]["metadata"]))
    samples = []
    seconds = input_seconds(model_input(config), model)
    for inputs, _ in make_inputs(config, cache, chosen, mode="eval", seconds=seconds, metadata=metadata,
                                 batch_size=1):
        if isinstance(inputs, dict):
            samples.append([inputs["audio"].numpy()] + ([inputs["metadata"].numpy()] if metadata else []))
        else:
            samples.append([inputs.numpy()])
        if len(samples) >= count:
            break
    return samples


def _representative_dataset(representative):
    """A converter ``representative_dataset`` callable from arrays, lists of input lists, or dicts of
    arrays by input name (what the converter matches most surely for several inputs)."""
    def batched(part):
        part = np.asarray(part, np.float32)
        return part[None] if part.ndim == 1 else part

    samples = [{name: batched(part) for name, part in sample.items()} if isinstance(sample, dict) else
               [batched(part) for part in (sample if isinstance(sample, (list, tuple)) else [sample])]
               for sample in representative]

    def generate():
        yield from samples

    return generate


def convert_tflite(model, quantize="none", representative=None, float_layers=()):
    """Flatbuffer bytes of the inference build ``model`` (builtins only, batch 1); in int8, the layers named
    in ``float_layers`` stay float with the front end (see :func:`float_nodes`)."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise CoughclfError(f"unknown quantisation {quantize!r}; choose one of {', '.join(QUANTIZATIONS)}")
    with tempfile.TemporaryDirectory(prefix="coughclf-export-") as directory:
        _export_saved_model(model, directory, batch_size=1)

        def converter():
            result = tf.lite.TFLiteConverter.from_saved_model(directory)
            result.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            return result

        plain = converter()
        if quantize == "float16":
            plain.optimizations = [tf.lite.Optimize.DEFAULT]
            plain.target_spec.supported_types = [tf.float16]
        elif quantize == "dynamic":
            plain.optimizations = [tf.lite.Optimize.DEFAULT]
        content = plain.convert()
        if quantize == "int8":
            content = _quantize_int8(converter(), content, model, representative, float_layers)
    check_builtin_only(content, f"{model.name} ({quantize})")
    return content


def _quantize_int8(converter, float_content, model, representative, float_layers=()):
    """Full-integer body, float front end and recurrent layers: calibrate, then quantise with those denylisted."""
    import tensorflow as tf

    if representative is None:
        raise CoughclfError("int8 quantisation needs representative inputs: export a run folder (its "
                            "training split is used) or pass representative=[arrays of one clip]")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(representative)
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=float_nodes(float_content, model, float_layers) or None)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def export_tflite(source, out, quantize="none", representative=None, *, labels=None, input_length=None,
                  stft="auto"):
    """Export a run folder, ``.keras`` file or model to a builtin-only ``.tflite`` plus its sidecar JSON.

    Args:
        source: a run folder (``best.keras`` and ``config.toml``), a ``.keras`` file or a
            ``keras.Model`` with a raw-waveform input.
        out: the ``.tflite`` path to write (folders are created).
        quantize: ``"none"``, ``"float16"``, ``"dynamic"`` or ``"int8"``.
        representative: int8 only — model inputs to calibrate on (arrays of one clip or
            lists of per-input arrays); default: windows of the run's training split.
        labels: class names for the sidecar (default: the run's classes, else indices).
        input_length: samples of the speech model's fixed input (default: the run's
            ``data.clip_seconds``, else 10 s).
        stft: ``"auto"``, ``"fft"`` or ``"matmul"`` (see :func:`export_stft`).

    Returns:
        the path of the ``.tflite`` file.
    """
    model, run_dir = load_trained(source)
    input_length = input_length or _speech_input_length(model, run_dir)
    export = inference_model(model, input_length, stft)
    if quantize == "int8" and representative is None and run_dir is not None:
        representative = representative_from_run(run_dir, model)
    content = convert_tflite(export, quantize, representative)
    write_bytes(out, content)
    write_json(sidecar_path(out), describe(export, run_dir, labels, quantize))
    return out


def _speech_input_length(model, run_dir, default_seconds=10.0):
    """Samples of a CTC model's export input: the run's clip length, else ``default_seconds``."""
    from coughclf.ctc import CTCModel

    if not isinstance(model, CTCModel):
        return None
    data = (_run_config(run_dir) or {}).get("data", {})
    return int(round((data.get("clip_seconds") or default_seconds) * data.get("sample_rate", 16000)))


# --- SavedModel ----------------------------------------------------------------------------------

def export_savedmodel(source, out, *, labels=None, input_length=None):
    """Export to a SavedModel folder for TensorFlow Serving (signature ``serve``, any batch size).

    The model keeps its training-time front end (any TensorFlow op is fine on a server);
    the metadata goes to ``coughclf.json`` inside the folder. Returns the folder.
    """
    from coughclf.ctc import CTCModel

    model, run_dir = load_trained(source)
    if isinstance(model, CTCModel):
        from coughclf.models.deepspeech import inference_model as ctc_inference_model

        model = ctc_inference_model(model, input_length or _speech_input_length(model, run_dir))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise CoughclfError(f"{out} exists and is not empty; choose a new folder for the SavedModel")
    with atomic_path(out) as partial:
        _export_saved_model(model, partial, batch_size=None)
        write_json(partial / SAVEDMODEL_METADATA, describe(model, run_dir, labels, "none"))
    return out
