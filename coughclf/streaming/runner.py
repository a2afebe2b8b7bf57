"""Running a streaming model over audio: the state kept between hops, for Keras and TFLite alike.

:class:`KerasStream` runs a :class:`~coughclf.streaming.convert.StreamingForm`,
:class:`TFLiteStream` a streaming ``.tflite`` (:mod:`coughclf.streaming.export`) by its sidecar.
Both are called with one hop of float32 samples and return the class probabilities of the
window ending there; both start as if the stream were preceded by silence (they are fed
``warmup_hops`` hops of zeros first) and expose ``metadata``: the sidecar's keys (labels,
sample rate, ``clip_samples`` = the window) with ``streaming`` (hop, delay, states).
:func:`load_stream` opens either from a path; :func:`hop_outputs` cuts audio blocks of any
size into hops and yields each hop's end (in samples) with its probabilities.

Example::

    from coughclf.streaming.runner import hop_outputs, load_stream
    stream = load_stream("kws_cnn_streaming.tflite")
    for end, probabilities in hop_outputs(stream, blocks):
        print(end / stream.metadata["sample_rate"], probabilities.max())
"""

from pathlib import Path

import numpy as np

from coughclf.errors import CoughclfError


class _Stream:
    """What both runners share: the warm-up. A runner's call takes ``hop_samples`` floats and returns the
    class probabilities of the window ending with them."""

    def reset(self):
        """Forget the audio so far: the stream starts again after silence."""
        self.clear_states()
        silence = np.zeros(self.hop_samples, np.float32)
        for _ in range(self.metadata["streaming"]["warmup_hops"]):
            self(silence)

    @property
    def hop_samples(self):
        return int(self.metadata["streaming"]["hop_samples"])


class KerasStream(_Stream):
    """A :class:`~coughclf.streaming.convert.StreamingForm` run hop by hop (batch 1).

    ``metadata``: the window model's sidecar description (:func:`coughclf.export.describe`), if
    known, with the streaming part added.
    """

    def __init__(self, form, metadata=None):
        self.form = form
        self.metadata = {**(metadata or {}), "sample_rate": form.sample_rate, "clip_samples": form.window_samples,
                         "streaming": form.describe()}
        self.reset()

    def clear_states(self):
        self.states = self.form.initial_states()

    def __call__(self, hop_audio):
        outputs = self.form.model.predict_on_batch([np.asarray(hop_audio, np.float32)[None], *self.states])
        self.states = [np.asarray(state) for state in outputs[1:]]
        return np.asarray(outputs[0])[0]


class TFLiteStream(_Stream):
    """A streaming ``.tflite`` file on one thread, its inputs and outputs found by the sidecar's names.

    The state stays in the interpreter: after each run the next states are copied from its outputs
    into its inputs (through views, never held across a run, which the interpreter forbids).
    """

    def __init__(self, path, metadata, metadata_path):
        from ai_edge_litert.interpreter import Interpreter

        from coughclf.predict import check_metadata

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=1)
            self.interpreter.allocate_tensors()
            inputs, outputs = signature_details(self.interpreter)
        except (ValueError, RuntimeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CoughclfError(f"{path} is not a usable TFLite model ({reason}); export it again with "
                                "'coughclf export --streaming'") from None
        names = ["audio", *(state["name"] for state in metadata["streaming"]["states"])]
        missing = [name for name in names if name not in inputs]
        if missing or len(outputs) != len(names):
            raise CoughclfError(f"{path} does not match its sidecar (inputs {sorted(inputs)}, expected {names}); "
                                "export it again with 'coughclf export --streaming'")
        self.input_indices = [inputs[name]["index"] for name in names]
        # Keras names a model's outputs output_0, output_1, ... in order: the probabilities, then the states.
        self.output_indices = [outputs[f"output_{index}"]["index"] for index in range(len(names))]
        self.metadata = check_metadata(metadata, metadata_path, int(outputs["output_0"]["shape"][-1]))
        self.reset()

    def clear_states(self):
        for index in self.input_indices[1:]:
            self.interpreter.tensor(index)().fill(0.0)

    def __call__(self, hop_audio):
        self.interpreter.set_tensor(self.input_indices[0], np.asarray(hop_audio, np.float32)[None])
        self.interpreter.invoke()
        for output, state in zip(self.output_indices[1:], self.input_indices[1:]):
            np.copyto(self.interpreter.tensor(state)(), self.interpreter.tensor(output)())
        return self.interpreter.get_tensor(self.output_indices[0])[0]


def signature_details(interpreter):
    """``(inputs, outputs)``: the tensor details of the interpreter's signature by name. The signature
    runner is let go before returning: while it lives, the interpreter refuses to run."""
    runner = interpreter.get_signature_runner()
    return runner.get_input_details(), runner.get_output_details()


def hop_outputs(stream, blocks):
    """``(end sample, probabilities)`` for each hop of the audio ``blocks`` (float32 arrays of any length)
    as soon as it is complete; a last partial hop is completed with silence."""
    hop = stream.hop_samples
    pending, end = np.zeros(0, np.float32), 0
    for block in blocks:
        pending = np.concatenate([pending, np.asarray(block, np.float32)])
        whole = len(pending) // hop * hop
        for start in range(0, whole, hop):
            end += hop
            yield end, stream(pending[start:start + hop])
        pending = pending[whole:]
    if len(pending):
        yield end + hop, stream(np.pad(pending, (0, hop - len(pending))))


def load_stream(path, hop_seconds=None):
    """A :class:`TFLiteStream` for a streaming ``.tflite`` (its hop is fixed at export), or a
    :class:`KerasStream` for a ``.keras`` file or run folder (hop ``hop_seconds``, default 20 ms in
    whole front-end frames)."""
    from coughclf.export import describe, load_trained, sidecar_path
    from coughclf.predict import check_metadata, read_sidecar
    from coughclf.streaming.convert import streaming_form

    path = Path(path)
    if path.suffix == ".tflite":
        metadata_path = sidecar_path(path)
        if not metadata_path.exists():
            raise CoughclfError(f"{path} has no metadata file {metadata_path}; export it with "
                                "'coughclf export --streaming' (which writes both)")
        metadata = read_sidecar(metadata_path)
        if "streaming" not in metadata:
            raise CoughclfError(f"{path} is a window model, not a streaming one; export the run with "
                                "'coughclf export RUN --format tflite --streaming', or give the .keras model")
        stream = TFLiteStream(path, metadata, metadata_path)
        if hop_seconds is not None and round(hop_seconds * metadata["sample_rate"]) != stream.hop_samples:
            raise CoughclfError(f"{path} was exported for a hop of {stream.hop_samples} samples "
                                f"({metadata['streaming']['hop_seconds']:g} s); drop --hop or export again with "
                                f"--hop {hop_seconds:g}")
        return stream
    if not path.exists():
        raise CoughclfError(f"model {path} not found; give a streaming .tflite, a .keras file or a run folder")
    model, run_dir = load_trained(path)
    form = streaming_form(model, hop_seconds=hop_seconds)
    return KerasStream(form, check_metadata(describe(model, run_dir), path, int(model.outputs[0].shape[-1])))
