"""Predictions on audio files with an exported ``.tflite`` or a ``.keras`` model.

Each file is streamed in blocks (:func:`coughclf.audio.stream_audio`, at the model's
sample rate) and cut into windows of the model's clip length as the blocks arrive
(:func:`iter_windows`), so memory stays bounded whatever the file's length: a short
file is centred in silence, as the evaluation pipeline does; a long one gives
windows every ``hop`` seconds (default half a clip) plus one ending at its last
sample. A classifier's window probabilities are averaged (and, for a timeline,
kept per window). The speech model's windows overlap by half; each frame of
log-probabilities is taken from the window whose centre is nearest (the core of
each window, :class:`_FrameStitcher`), and the joined sequence is decoded once, so
no stretch of speech is transcribed twice.

A file that cannot be used (undecodable, missing, a pipe or device, an implausible header,
longer than ``max_file_seconds``, a window count beyond :data:`MAX_WINDOWS`) becomes a row
with ``error``; the others are still predicted.

``NAME:WEIGHTS`` (``yamnet:yamnet.tflite``) tags with a registered model built from its published
weights and their own classes, with no training (:class:`PretrainedPredictor`): windows of the
model's input (YAMNet: one 0.975 s patch every 0.48 s, as YAMNet frames a recording), scores
averaged over the file, the ``top`` classes listed.

TFLite models run with ``ai_edge_litert`` on one thread and need only their sidecar
JSON (:func:`coughclf.export.sidecar_path`). A ``.keras`` model uses its sidecar if
present, else the run folder it sits in (``config.toml``, ``training.json``), else its
own input shape and class indices. Extra inputs (clip metadata) are fed zeros, the
training mean of standardised numeric columns. The sidecar is checked when the model
is loaded: its labels must match the model's outputs.

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
# Beyond this many windows a file takes hours on one CPU: almost always a --hop typed too small.
MAX_WINDOWS = 200_000
TASKS = ("classification", "ctc")
# A timeline plot of more classes than this shows the file's most probable ones.
PLOTTED_CLASSES = 8


def window_count(num_samples, clip_samples, hop_samples):
    """How many windows :func:`iter_windows` cuts from ``num_samples`` samples."""
    if num_samples <= clip_samples:
        return 1
    regular = (num_samples - clip_samples) // hop_samples + 1
    return regular + int((regular - 1) * hop_samples + clip_samples < num_samples)


def iter_windows(blocks, clip_samples, hop_samples):
    """``(start sample, window)`` pairs over the audio ``blocks`` (see the module docstring).

    Holds at most one window plus one block: the samples no later window needs are dropped as
    soon as the next block arrives. A short file's start is negative (the silence before it).
    """
    hop_samples = max(1, int(hop_samples))
    buffer, offset, next_start, last_start = np.zeros(0, np.float32), 0, 0, None
    for block in blocks:
        buffer = np.concatenate([buffer, np.asarray(block, np.float32)])
        end = offset + len(buffer)
        while next_start + clip_samples <= end:
            yield next_start, buffer[next_start - offset:next_start - offset + clip_samples].copy()
            last_start, next_start = next_start, next_start + hop_samples
        keep = max(offset, min(next_start, end - clip_samples))
        buffer, offset = buffer[keep - offset:], keep
    end = offset + len(buffer)
    if last_start is None:  # shorter than one window
        before = (clip_samples - end) // 2
        yield -before, np.pad(buffer, (before, clip_samples - end - before))
    elif last_start + clip_samples < end:
        yield end - clip_samples, buffer[len(buffer) - clip_samples:].copy()


def split_windows(audio, clip_samples, hop_samples):
    """``[windows, clip_samples]`` float32 covering ``audio`` (see :func:`iter_windows`)."""
    return np.stack([window for _, window in iter_windows([audio], clip_samples, hop_samples)])


def read_sidecar(path):
    """The JSON object of a model's sidecar at ``path``, or a one-line error naming it."""
    try:
        metadata = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CoughclfError(f"{path} is not valid JSON ({error}); export the model again with 'coughclf export', "
                            "which writes it") from None
    if not isinstance(metadata, dict):
        raise CoughclfError(f"{path} is not a coughclf model description (a JSON object); export the model again")
    return metadata


def check_metadata(metadata, where, output_size):
    """Raise a :class:`CoughclfError` naming ``where`` unless ``metadata`` describes a model whose last
    axis has ``output_size`` entries (one per label for a classifier)."""
    fix = f"export the model again with 'coughclf export' or correct {where}"
    if metadata.get("task") not in TASKS:
        raise CoughclfError(f"{where}: task {metadata.get('task')!r} is not one of {', '.join(TASKS)}; {fix}")
    for key in ("sample_rate", "clip_samples"):
        value = metadata.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CoughclfError(f"{where}: {key} must be a positive whole number, got {value!r}; {fix}")
    if metadata["task"] == "classification":
        labels = metadata.get("labels")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise CoughclfError(f"{where}: labels must be a list of class names; {fix}")
        if len(labels) != output_size:
            raise CoughclfError(f"{where} lists {len(labels)} labels but the model outputs {output_size} "
                                f"class probabilities; {fix}")
    return metadata


class TFLitePredictor:
    """A ``.tflite`` model on one thread: ``predictor(window) -> output`` of one window."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        from coughclf.export import sidecar_path

        metadata_path = sidecar_path(path)
        if not metadata_path.exists():
            raise CoughclfError(f"{path} has no metadata file {metadata_path}; export it with "
                                "'coughclf export' (which writes both) or copy the JSON next to it")
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CoughclfError(f"{path} is not a usable TFLite model ({reason}); it may be truncated or damaged: "
                                "export it again with 'coughclf export'") from None
        self.inputs = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
        self.metadata = check_metadata(read_sidecar(metadata_path), metadata_path, int(self.output["shape"][-1]))

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
        metadata = read_sidecar(metadata_path) if metadata_path.exists() else describe(self.model, run_dir)
        self.metadata = check_metadata(metadata, metadata_path if metadata_path.exists() else path,
                                       int(self.model.outputs[0].shape[-1]))

    def __call__(self, window):
        extra = [np.zeros((1, *tensor.shape[1:]), np.float32) for tensor in self.model.inputs[1:]]
        outputs = self.model.predict_on_batch([window[None], *extra] if extra else window[None])
        return np.asarray(outputs)[0]


class PretrainedPredictor(KerasPredictor):
    """``NAME:WEIGHTS``: the registered model ``NAME`` built from published weights with their own
    classes (``PretrainedSupport.class_names``), e.g. ``yamnet:yamnet.tflite`` for AudioSet tags."""

    def __init__(self, name, weights):
        from coughclf import models

        support = models.spec(name).pretrained
        if support is None or support.class_names is None:
            taggers = [model for model in models.available()
                       if models.spec(model).pretrained and models.spec(model).pretrained.class_names]
            raise CoughclfError(f"{name}:{weights}: {name} has no published classes to tag with; give a trained "
                                f"model file, or one of {', '.join(f'{tagger}:WEIGHTS' for tagger in taggers)}")
        self.model = models.build(name, weights=weights)
        labels = list(support.class_names())
        metadata = {"task": "classification", "sample_rate": models.spec(name).defaults.get("sample_rate", 16000),
                    "clip_samples": int(self.model.input.shape[1]), "labels": labels, "multi_label": True}
        try:  # a model that cuts its input into patches steps through a recording by its patch hop
            metadata["hop_samples"] = (self.model.get_layer("patches").hop_frames *
                                       self.model.get_layer("yamnet_log_mel").hop_length)
        except ValueError:
            pass
        self.metadata = check_metadata(metadata, f"{name}:{weights}", int(self.model.outputs[0].shape[-1]))


def pretrained_spec(path):
    """``(name, weights)`` of a ``NAME:WEIGHTS`` model argument naming a registered model, else None."""
    from coughclf import models

    name, separator, weights = str(path).partition(":")
    if separator and weights and name in models.available() and not Path(path).exists():
        return name, weights
    return None


def load_predictor(path):
    """A :class:`TFLitePredictor` or :class:`KerasPredictor` for ``path`` by its suffix (a ``coughclf cv``
    folder: its fold ensemble, :mod:`coughclf.ensemble`; ``NAME:WEIGHTS``: :class:`PretrainedPredictor`)."""
    from coughclf.ensemble import is_cv_folder

    pretrained = pretrained_spec(path)
    if pretrained:
        return PretrainedPredictor(*pretrained)
    path = Path(path)
    if is_cv_folder(path):
        return KerasPredictor(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise CoughclfError(f"{path}: unknown model type; give a .tflite (from 'coughclf export') or a "
                            ".keras file (a run's best.keras)")
    if not path.is_file():
        raise CoughclfError(f"model file {path} not found")
    return TFLitePredictor(path) if path.suffix == ".tflite" else KerasPredictor(path)


class _FrameStitcher:
    """Joins the per-frame outputs of overlapping windows into one sequence without repeats.

    Window ``i`` owns the stretch of the recording nearer its centre than any other window's;
    of each window's frames only those whose centre falls in its stretch are kept.
    """

    def __init__(self, clip_samples):
        self.clip = clip_samples
        self.frames = []
        self.pending = None
        self.owned_from = -np.inf

    def add(self, start, output):
        if self.pending is not None:
            boundary = (self.pending[0] + start + self.clip) / 2.0  # midway between the two centres
            self._keep(*self.pending, until=boundary)
            self.owned_from = boundary
        self.pending = (start, np.asarray(output))

    def finish(self):
        if self.pending is not None:
            self._keep(*self.pending, until=np.inf)
        return np.concatenate(self.frames) if self.frames else np.zeros((0, 0), np.float32)

    def _keep(self, start, output, until):
        centres = start + (np.arange(len(output)) + 0.5) * self.clip / len(output)
        self.frames.append(output[(centres >= self.owned_from) & (centres < until)])


def predict_stream(predictor, stream, hop_seconds=None, lexicon=None, timeline=False, top=None):
    """The prediction dict of one :class:`coughclf.audio.AudioStream` (without ``file``).

    Classifiers give ``label``, ``probability``, ``probabilities``, ``windows`` (and with
    ``timeline`` a ``timeline`` list of ``(start s, end s, probabilities)`` per window; with
    ``top`` a ``top`` list of the ``top`` most probable ``[label, probability]``); speech
    models give ``text`` and ``windows``, decoded greedily or with ``lexicon`` (a list of words)
    only in its words (:func:`coughclf.ctc.lexicon_decode_numpy`).
    """
    from coughclf.ctc import greedy_decode_numpy, lexicon_decode_numpy

    metadata = predictor.metadata
    clip, rate = int(metadata["clip_samples"]), int(metadata["sample_rate"])
    speech = metadata["task"] == "ctc"
    default_hop = clip // 2 if speech else int(metadata.get("hop_samples", clip // 2))
    hop = default_hop if speech or not hop_seconds else max(1, int(round(hop_seconds * rate)))
    if stream.expected_samples is not None:
        _check_window_count(window_count(stream.expected_samples, clip, hop), hop, rate, stream)
    stitcher = _FrameStitcher(clip) if speech else None
    total, windows, per_window = None, 0, []
    for start, window in iter_windows(stream, clip, hop):
        windows += 1
        if windows > MAX_WINDOWS:
            _check_window_count(windows, hop, rate, stream)
        output = predictor(window)
        if speech:
            stitcher.add(start, output)
            continue
        total = output.astype(np.float64) if total is None else total + output
        if timeline:
            per_window.append((max(start, 0) / rate, (start + clip) / rate, np.asarray(output, np.float32)))
    if speech:
        frames = stitcher.finish()
        text = lexicon_decode_numpy(frames, lexicon) if lexicon else greedy_decode_numpy(frames)
        return {"text": text, "windows": windows}
    probabilities = total / windows
    best = int(np.argmax(probabilities))
    labels = metadata["labels"]
    result = {"label": labels[best], "probability": float(probabilities[best]), "windows": windows,
              "probabilities": {label: float(p) for label, p in zip(labels, probabilities)}}
    if timeline:
        result["timeline"] = per_window
    if top:
        result["top"] = [[labels[index], float(probabilities[index])] for index in np.argsort(-probabilities)[:top]]
    return result


def _check_window_count(count, hop, rate, stream):
    if count > MAX_WINDOWS:
        seconds = (stream.expected_samples or count * hop) / rate
        smallest = seconds / MAX_WINDOWS
        raise CoughclfError(f"{stream.path}: {count} windows at a hop of {hop / rate:g} s is more than the "
                            f"{MAX_WINDOWS} allowed per file; use --hop {smallest:.3g} or more for this "
                            f"{seconds:.0f}-second file")


def predict_audio(predictor, audio, hop_seconds=None, lexicon=None):
    """The prediction dict of one decoded clip (a float32 array at the model's rate); see
    :func:`predict_stream`."""
    return predict_stream(predictor, _ArrayStream(audio), hop_seconds, lexicon)


class _ArrayStream(list):
    """An in-memory clip shaped like :class:`coughclf.audio.AudioStream`."""

    def __init__(self, audio):
        super().__init__([np.asarray(audio, np.float32)])
        self.expected_samples = len(self[0])
        self.path = "audio"


def expand_inputs(paths):
    """``paths`` with every folder replaced by the audio files below it (sorted, recursive); a folder
    without audio stays, so that its row says so."""
    from coughclf.audio import FFMPEG_SUFFIXES
    from coughclf.datasets.layout import AUDIO_SUFFIXES, audio_files

    expanded = []
    for path in map(Path, paths):
        found = audio_files(path, AUDIO_SUFFIXES + tuple(FFMPEG_SUFFIXES)) if path.is_dir() else []
        expanded.extend(found or [path])
    return expanded


def predict_files(model_path, files, hop_seconds=None, predictor=None, lexicon=None, timeline=False,
                  max_file_seconds=None, top=None):
    """One dict per file: ``file`` plus ``label``/``probability``/``probabilities``/``windows``
    (classifiers; ``timeline``, ``top``: see :func:`predict_stream`), ``text``/``windows`` (speech;
    ``lexicon``: see :func:`predict_stream`), or ``error`` for a file that could not be used
    (one longer than ``max_file_seconds``, default :data:`coughclf.audio.DEFAULT_MAX_FILE_SECONDS`,
    included). Folders in ``files`` are searched recursively for audio files (:func:`expand_inputs`)."""
    from coughclf.audio import DEFAULT_MAX_FILE_SECONDS, printable, stream_audio

    predictor = predictor or load_predictor(model_path)
    if hop_seconds is not None and hop_seconds <= 0:
        raise CoughclfError(f"--hop must be a positive number of seconds, got {hop_seconds}")
    max_file_seconds = DEFAULT_MAX_FILE_SECONDS if max_file_seconds is None else max_file_seconds
    if not max_file_seconds > 0:
        raise CoughclfError(f"--max-file-seconds must be a positive number of seconds, got {max_file_seconds}")
    if lexicon and predictor.metadata["task"] != "ctc":
        raise CoughclfError(f"{model_path} is a classifier; --lexicon applies to speech-recognition models")
    results = []
    for path in expand_inputs(files):
        try:
            if path.is_dir():
                raise CoughclfError("a folder holding no audio files")
            stream = stream_audio(path, predictor.metadata["sample_rate"], max_file_seconds=max_file_seconds)
            results.append({"file": printable(path),
                            **predict_stream(predictor, stream, hop_seconds, lexicon, timeline, top)})
        except (CoughclfError, OSError, MemoryError) as error:
            reason = getattr(error, "reason", None) or str(error).removeprefix(f"{path}: ")
            results.append({"file": printable(path), "error": printable(reason or type(error).__name__)})
    return results


def _write_rows_atomic(path, columns, rows):
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)
    return path


def csv_columns(labels):
    """Columns of ``predict --csv``: classifiers get one ``p_{label}`` per class, speech models ``text``."""
    if not labels:
        return ["file", "text", "windows", "error"]
    return ["file", "label", "probability", "windows", *(f"p_{label}" for label in labels), "error"]


def write_csv(results, path, labels):
    """``results`` of :func:`predict_files` as CSV at ``path`` (atomically), failed files included."""
    rows = [{**{key: value for key, value in row.items() if key not in ("probabilities", "timeline")},
             **{f"p_{label}": probability for label, probability in row.get("probabilities", {}).items()}}
            for row in results]
    return _write_rows_atomic(path, csv_columns(labels), rows)


def write_timelines(results, folder, labels):
    """For each predicted file: ``folder/NAME.csv`` (start_seconds, end_seconds, one column per class) and
    ``folder/NAME.png`` (the probabilities over time; of many classes, as YAMNet's 521, the file's
    :data:`PLOTTED_CLASSES` most probable); NAME is the file's stem, numbered when repeated.
    Returns the CSV paths."""
    from coughclf.plots import load_pyplot, save_figure

    folder = Path(folder)
    written, used = [], set()
    for row in results:
        if "timeline" not in row:
            continue
        stem, number = Path(row["file"]).stem, 1
        name = stem
        while name in used:
            number += 1
            name = f"{stem}-{number}"
        used.add(name)
        columns = ["start_seconds", "end_seconds", *labels]
        rows = [{"start_seconds": round(start, 4), "end_seconds": round(end, 4),
                 **{label: float(p) for label, p in zip(labels, probabilities)}}
                for start, end, probabilities in row["timeline"]]
        written.append(_write_rows_atomic(folder / f"{name}.csv", columns, rows))
        plt = load_pyplot()
        figure, axes = plt.subplots(figsize=(9, 3.5))
        centres = [(start + end) / 2 for start, end, _ in row["timeline"]]
        probabilities = np.array([p for _, _, p in row["timeline"]])
        shown = np.argsort(-probabilities.mean(axis=0))[:PLOTTED_CLASSES] if len(labels) > PLOTTED_CLASSES else \
            range(len(labels))
        for index in shown:
            axes.plot(centres, probabilities[:, index], label=labels[index], marker="." if len(centres) < 50 else None)
        axes.set(xlabel="time (s, window centre)", ylabel="probability", ylim=(-0.02, 1.02),
                 title=f"{Path(row['file']).name}: {row['label']} ({row['probability']:.2f})")
        axes.legend(loc="upper right", fontsize="small", ncol=min(len(shown), 5))
        save_figure(figure, folder / f"{name}.png")
    return written
