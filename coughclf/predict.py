"""Predictions on audio files with an exported ``.tflite`` or a ``.keras`` model.

Each file is decoded with :func:`coughclf.audio.load_audio` at the model's sample rate
and cut into windows of the model's clip length (:func:`split_windows`): a short file
is centred in silence, as the evaluation pipeline does; a long one gives windows every
``hop`` seconds (default half a clip) plus one ending at its last sample. A classifier's
window probabilities are averaged; the speech model's windows (hop = one clip) are
decoded greedily in NumPy and joined.

TFLite models run with ``ai_edge_litert`` on one thread and need only their sidecar
JSON (:func:`coughclf.export.sidecar_path`). A ``.keras`` model uses its sidecar if
present, else the run folder it sits in (``config.toml``, ``training.json``), else its
own input shape and class indices. Extra inputs (clip metadata) are fed zeros, the
training mean of standardised numeric columns.

Example::

    from coughclf.predict import predict_files
    for row in predict_files("kws_cnn.tflite", ["one.wav", "two.mp3"]):
        print(row["file"], row.get("label"), row.get("probability"), row.get("error"))
"""

import json
from pathlib import Path

import numpy as np

from coughclf.errors import CoughclfError

MODEL_SUFFIXES = (".tflite", ".keras")


def split_windows(audio, clip_samples, hop_samples):
    """``[windows, clip_samples]`` float32 covering ``audio`` (see the module docstring)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) <= clip_samples:
        before = (clip_samples - len(audio)) // 2
        return np.pad(audio, (before, clip_samples - len(audio) - before))[None]
    starts = list(range(0, len(audio) - clip_samples + 1, max(1, int(hop_samples))))
    if starts[-1] + clip_samples < len(audio):
        starts.append(len(audio) - clip_samples)
    return np.stack([audio[start:start + clip_samples] for start in starts])


class TFLitePredictor:
    """A ``.tflite`` model on one thread: ``predictor(window) -> output`` of one window."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        from coughclf.export import sidecar_path

        metadata_path = sidecar_path(path)
        if not metadata_path.exists():
            raise CoughclfError(f"{path} has no metadata file {metadata_path}; export it with "
                                "'coughclf export' (which writes both) or copy the JSON next to it")
        self.metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, window):
        for index, detail in enumerate(self.inputs):
            value = window[None] if index == 0 else np.zeros(detail["shape"], detail["dtype"])
            self.interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0]


class KerasPredictor:
    """A ``.keras`` model (the speech model as its fixed-length inference model)."""

    def __init__(self, path):
        from coughclf.ctc import CTCModel
        from coughclf.export import _speech_input_length, describe, load_trained, sidecar_path

        self.model, run_dir = load_trained(path)  # run_dir: a CV folder's own (its fold ensemble)
        if run_dir is None and (Path(path).parent / "config.toml").exists():
            run_dir = Path(path).parent
        if isinstance(self.model, CTCModel):
            from coughclf.models.deepspeech import inference_model

            self.model = inference_model(self.model, _speech_input_length(self.model, run_dir))
        metadata_path = sidecar_path(path)
        self.metadata = (json.loads(metadata_path.read_text(encoding="utf-8")) if metadata_path.exists()
                         else describe(self.model, run_dir))

    def __call__(self, window):
        extra = [np.zeros((1, *tensor.shape[1:]), np.float32) for tensor in self.model.inputs[1:]]
        outputs = self.model.predict_on_batch([window[None], *extra] if extra else window[None])
        return np.asarray(outputs)[0]


def load_predictor(path):
    """A :class:`TFLitePredictor` or :class:`KerasPredictor` for ``path`` by its suffix (a ``coughclf cv``
    folder: its fold ensemble, :mod:`coughclf.ensemble`)."""
    from coughclf.ensemble import is_cv_folder

    path = Path(path)
    if is_cv_folder(path):
        return KerasPredictor(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise CoughclfError(f"{path}: unknown model type; give a .tflite (from 'coughclf export') or a "
                            ".keras file (a run's best.keras)")
    if not path.exists():
        raise CoughclfError(f"model file {path} not found")
    return TFLitePredictor(path) if path.suffix == ".tflite" else KerasPredictor(path)


def predict_audio(predictor, audio, hop_seconds=None, lexicon=None):
    """The prediction dict of one decoded clip (without ``file``); speech models decode greedily, or
    with ``lexicon`` (a list of words) only in its words (:func:`coughclf.ctc.lexicon_decode_numpy`)."""
    from coughclf.ctc import greedy_decode_numpy, lexicon_decode_numpy

    metadata = predictor.metadata
    clip = int(metadata["clip_samples"])
    speech = metadata["task"] == "ctc"
    hop = clip if speech else int(round(hop_seconds * metadata["sample_rate"])) if hop_seconds else clip // 2
    windows = split_windows(audio, clip, hop)
    outputs = [predictor(window) for window in windows]
    if speech:
        decoded = (lexicon_decode_numpy(output, lexicon) if lexicon else greedy_decode_numpy(output)
                   for output in outputs)
        text = " ".join(part for part in decoded if part)
        return {"text": text, "windows": len(windows)}
    probabilities = np.mean(outputs, axis=0)
    best = int(np.argmax(probabilities))
    labels = metadata["labels"]
    return {"label": labels[best], "probability": float(probabilities[best]), "windows": len(windows),
            "probabilities": {label: float(p) for label, p in zip(labels, probabilities)}}


def predict_files(model_path, files, hop_seconds=None, predictor=None, lexicon=None):
    """One dict per file: ``file`` plus ``label``/``probability``/``probabilities``/``windows``
    (classifiers), ``text``/``windows`` (speech; ``lexicon``: see :func:`predict_audio`), or
    ``error`` for a file that could not be used."""
    from coughclf.audio import load_audio

    predictor = predictor or load_predictor(model_path)
    if hop_seconds is not None and hop_seconds <= 0:
        raise CoughclfError(f"--hop must be a positive number of seconds, got {hop_seconds}")
    if lexicon and predictor.metadata["task"] != "ctc":
        raise CoughclfError(f"{model_path} is a classifier; --lexicon applies to speech-recognition models")
    results = []
    for path in files:
        try:
            audio = load_audio(path, predictor.metadata["sample_rate"])
        except CoughclfError as error:
            results.append({"file": str(path), "error": getattr(error, "reason", str(error))})
            continue
        results.append({"file": str(path), **predict_audio(predictor, audio, hop_seconds, lexicon)})
    return results
