"""The weights of a ``.tflite`` model: its constant tensors, dequantised to float32.

A TFLite flatbuffer keeps every weight as a constant tensor: float32, float16, or int8/uint8
with a scale (and zero point) per tensor or per output channel (dynamic-range quantisation,
as in the TF Hub / Kaggle YAMNet). :func:`read_tflite_weights` opens the file with the LiteRT
interpreter (the public runtime, no flatbuffer parsing here), takes the tensors that some
operator reads, none writes and the caller does not feed (the constants), and returns them as float32 arrays::

    value = (quantised - zero_point) * scale       # scale, zero point per channel of one axis

Integer tensors without quantisation (shapes, paddings, gather indices) are the graph's
plumbing, not weights, and are left out. A tensor's name is the first ``;``-separated part of
TFLite's (the converter joins the names of fused TensorFlow ops); names that occur more than
once get ``#2``, ``#3`` … in tensor order (a folded batch norm names both the kernel and the
bias after itself).
"""

from pathlib import Path

import numpy as np

from coughclf.errors import CoughclfError

QUANTISED_TYPES = (np.int8, np.uint8)


def open_interpreter(path, **options):
    """A LiteRT ``Interpreter`` of ``path``, its tensors allocated; a clear error for a file that is not one."""
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise CoughclfError(f"{path} does not exist; give the path of a .tflite file")
    try:
        interpreter = Interpreter(model_path=str(path), **options)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise CoughclfError(f"{path} is not a readable TFLite model ({str(error).splitlines()[0]}); "
                            "download it again") from None
    return interpreter


def dequantise(values, quantisation):
    """A quantised tensor as float32, with ``quantization_parameters`` of ``get_tensor_details``."""
    scales = np.asarray(quantisation["scales"], np.float32)
    zero_points = np.asarray(quantisation["zero_points"], np.float32)
    if scales.size == 0:
        raise ValueError("an integer tensor without quantisation parameters is no weight")
    if scales.size > 1:  # per channel along quantized_dimension
        shape = [1] * values.ndim
        shape[quantisation["quantized_dimension"]] = scales.size
        scales = scales.reshape(shape)
        zero_points = zero_points.reshape(shape) if zero_points.size == scales.size else zero_points
    return (values.astype(np.float32) - zero_points) * scales


def read_tflite_weights(path):
    """``{name: float32 array}`` of the constant float and quantised tensors of the ``.tflite`` at ``path``."""
    from coughclf.compat import tflite_operators

    interpreter = open_interpreter(path)
    operators = tflite_operators(interpreter)
    written = {index for op in operators for index in op["outputs"]}
    inputs = {details["index"] for details in interpreter.get_input_details()}
    read = {index for op in operators for index in op["inputs"] if index >= 0} - inputs  # -1: an omitted input
    weights, seen = {}, {}
    for details in sorted(interpreter.get_tensor_details(), key=lambda d: d["index"]):
        index = details["index"]
        if index not in read or index in written:
            continue
        values = interpreter.get_tensor(index)
        if values.dtype in QUANTISED_TYPES and len(details["quantization_parameters"]["scales"]):
            values = dequantise(values, details["quantization_parameters"])
        elif values.dtype in (np.float32, np.float16):
            values = values.astype(np.float32)
        else:
            continue
        name = details["name"].split(";")[0] or str(index)
        seen[name] = seen.get(name, 0) + 1
        weights[name if seen[name] == 1 else f"{name}#{seen[name]}"] = values
    if not weights:
        raise CoughclfError(f"{path} holds no weights (no constant float or quantised tensor); is it a model?")
    return weights
