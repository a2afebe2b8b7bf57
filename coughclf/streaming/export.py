"""The streaming form as a TFLite file: state as explicit inputs and outputs, built-in ops only.

The window model's inference build (:func:`coughclf.export.inference_model`: a convertible STFT,
the banded mel projection) is turned into its streaming form
(:func:`coughclf.streaming.convert.streaming_form`) and converted as any export is
(:func:`coughclf.export.convert_tflite`: builtins only, the operator table checked). Its inputs
are ``audio`` ``[1, hop]`` and one ``NAME_state`` per buffer; its outputs ``output_0`` (the
class probabilities) and ``output_1…`` (the next states, in the inputs' order): the caller keeps
the state, so the file holds no variables (no ``VAR_HANDLE``/``READ_VARIABLE``/``ASSIGN_VARIABLE``,
checked) and one file serves any number of streams.

int8: the body is quantised as in the window export, calibrated on the streaming model's own
inputs (each hop of training clips streamed one after another, with its state); the front end
and the buffer of raw samples before it stay float (16-bit audio in 8 bits would lose 48 dB).
The states cross the interface in float32.

The sidecar is the window model's (:func:`coughclf.export.describe`) with the streaming inputs
and outputs and a ``streaming`` entry: hop, window, front-end frame hop, delay, warm-up hops and
every state's name and shape (:meth:`coughclf.streaming.convert.StreamingForm.describe`).
"""

import numpy as np

from coughclf.errors import CoughclfError

# Operators that would mean the file keeps state itself (resource variables), which the stream must not.
VARIABLE_OPERATORS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
CALIBRATION_CLIPS = 20


def check_stateless(content, what):
    """Raise if the flatbuffer ``content`` holds resource variables."""
    from coughclf.export import flatbuffer_operators

    found = sorted(set(flatbuffer_operators(content)) & set(VARIABLE_OPERATORS))
    if found:
        raise CoughclfError(f"{what} keeps state in resource variables ({', '.join(found)}); its state must be "
                            "explicit inputs and outputs. Report the model and options that produced it")


def front_end_buffers(form):
    """Names of the buffers of raw samples (those feeding the front end), which stay float in int8."""
    from coughclf.streaming.buffer import StreamBuffer

    model = form.model
    audio = model.inputs[0]
    return [layer.name for layer in model.layers if isinstance(layer, StreamBuffer)
            and any(tensor is audio for tensor in _inputs(layer))]


def _inputs(layer):
    return layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]


def streaming_representative(form, clips, keep_every=5):
    """Calibration inputs of the streaming model: ``clips`` (arrays of samples) streamed one after another,
    half a window of silence after each, every ``keep_every``-th hop's ``{input name: array}``. The silence
    is there because a stream starts in it (its warm-up) and a microphone may give it: digital zeros are
    the front end's floor (``amin``), far below any recording, and a quantised body calibrated without
    them clips the first hops of every stream."""
    from coughclf.streaming.runner import KerasStream

    stream = KerasStream(form)
    gap = np.zeros(form.window_samples // 2, np.float32)
    audio = np.concatenate([part for clip in clips for part in (np.asarray(clip, np.float32).reshape(-1), gap)])
    names = ["audio", *(state.name for state in form.states)]
    samples, hop = [], form.hop_samples
    for index, start in enumerate(range(0, len(audio) - hop + 1, hop)):
        if index % keep_every == 0:
            samples.append(dict(zip(names, [audio[None, start:start + hop], *stream.states])))
        stream(audio[start:start + hop])
    return samples


def export_streaming_tflite(source, out, quantize="none", representative=None, *, labels=None, stft="auto",
                            hop_seconds=None):
    """Export a run folder, ``.keras`` file or model as a streaming ``.tflite`` plus its sidecar JSON.

    ``representative`` (int8): clips of the training data to calibrate on, as arrays of samples or
    the input lists of :func:`coughclf.export.representative_from_run` (default:
    :data:`CALIBRATION_CLIPS` windows of the run's training split). ``hop_seconds``:
    audio per call (default 20 ms in whole front-end frames). Returns the ``.tflite`` path.
    """
    from coughclf.ctc import CTCModel
    from coughclf.export import (convert_tflite, describe, inference_model, load_trained, representative_from_run,
                                 sidecar_path)
    from coughclf.files import write_bytes, write_json
    from coughclf.streaming.convert import streaming_form

    model, run_dir = load_trained(source)
    if isinstance(model, CTCModel):
        raise CoughclfError("a speech model's output is one row per frame, not one per window: it does not stream; "
                            "export it without --streaming")
    window_model = inference_model(model, stft=stft)
    form = streaming_form(window_model, hop_seconds=hop_seconds)
    if quantize == "int8":
        if representative is None:
            if run_dir is None:
                raise CoughclfError("int8 quantisation needs calibration audio: export a run folder (its training "
                                    "split is used) or pass representative=[clips]")
            representative = representative_from_run(run_dir, model, CALIBRATION_CLIPS)
        clips = [sample[0] if isinstance(sample, (list, tuple)) else sample for sample in representative]
        representative = streaming_representative(form, clips)
    content = convert_tflite(form.model, quantize, representative, float_layers=front_end_buffers(form))
    check_stateless(content, f"{form.model.name} ({quantize})")
    metadata = describe(window_model, run_dir, labels, quantize)
    metadata["inputs"] = [{"name": "audio", "shape": [1, form.hop_samples], "dtype": "float32"},
                          *form.describe()["states"]]
    metadata["outputs"] = [{"name": "output_0", "shape": [1, int(form.model.outputs[0].shape[-1])],
                            "dtype": "float32", "meaning": "probabilities"},
                           *({"name": f"output_{index}", "shape": [1, *state.shape], "dtype": "float32",
                              "meaning": f"next {state.name}"} for index, state in enumerate(form.states, start=1))]
    metadata["streaming"] = form.describe()
    write_bytes(out, content)
    write_json(sidecar_path(out), metadata)
    return out
