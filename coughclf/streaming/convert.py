"""A trained classifier's streaming form, rebuilt from its own layers and weights.

The window model maps ``W`` samples to class probabilities. Its streaming form takes the
newest ``hop`` samples and the state kept from the last call, and returns the probabilities
the window model gives for the ``W`` samples ending now, plus the next state — each STFT
frame and each column of every layer computed once, instead of ``W / hop`` times.

How. Every tensor whose axis ``a`` runs along time is a sequence of *columns*; in the window
model it has ``N`` of them, ``jump`` samples apart, the newest ending ``lag`` samples before
the window's end (a layer of extent ``k`` and stride ``s`` drops the ``(N − k) mod s`` newest
columns it cannot use). As the window advances by ``hop``, the columns the windows need lie
on a grid ``spacing = gcd(hop, jump)`` samples apart, and each hop adds ``hop / spacing`` new
ones. So each time-looking layer (the STFT, convolutions, pooling) computes just its new
columns from a :class:`~coughclf.streaming.buffer.StreamBuffer` of the grid columns it reads
(the older ones are state), in one call when its columns are ``hop``-aligned (``jump``
divides ``hop``) and one call per new column otherwise (strides along time: all phases of
the window's pooling grid are needed, as the next window sits ``hop`` further). Pointwise
layers (activations, BatchNorm at inference, dense layers along features, permutes) run on
the new columns as they are. A layer that reads the whole window at once (``Flatten`` then
``Dense``, :class:`~coughclf.layers.blocks.TimeLinearPooling`, global pooling, a recurrent
layer whose sequence is *not* time, e.g. kws_crnn's LSTM across channels) gets its ``N``
input columns from a buffer and runs as in the window model, once per hop; everything after
it too (a ``Flatten`` + ``Dense`` head keeps each column's projections instead of the columns,
:mod:`coughclf.streaming.head`). The outputs are therefore the window model's own, up to float
rounding.

What cannot stream (refused with one line naming the layer and the fix, see
:func:`streaming_form`): a front end that references, clips or normalises each window by
its own statistics (``ref="max"``, ``top_db``, ``normalize="per_example"``) or pads the
window's edges (``center=True``); zero padding or ``"same"`` padding along time (the
window's edges are zeros in the window model, real audio in a stream); recurrence or
attention along time (a bidirectional layer reads the window's end before its start; a
unidirectional one starts from zeros at each window's start).

The stream begins as if preceded by silence once it has been fed
:attr:`StreamingForm.warmup_hops` hops of zeros (the state after ``W`` samples of silence;
:class:`coughclf.streaming.runner.KerasStream` does it).

Example::

    from coughclf.streaming import streaming_form
    form = streaming_form(trained_model, hop_samples=320)
    probabilities, *states = form.model([hop_audio[None], *states])
"""

import math
from dataclasses import dataclass, field

import keras
import numpy as np

from coughclf.errors import CoughclfError
from coughclf.streaming.buffer import StreamBuffer
from coughclf.streaming.settings import default_hop, frontend_problem

CONVOLUTIONAL_FIX = "use a convolutional model (kws_cnn, cough_small_cnn or cough_large_cnn stream)"


@dataclass(frozen=True)
class Track:
    """Where a tensor's columns lie in time (see the module docstring), in samples."""

    axis: int
    columns: int
    jump: int
    lag: int
    spacing: int

    @property
    def step(self):
        """Grid columns between two consecutive columns of the window model's tensor."""
        return self.jump // self.spacing


@dataclass(frozen=True)
class StateSpec:
    """One state input (and the matching output) of a streaming model; ``shape`` without the batch."""

    name: str
    shape: tuple


@dataclass
class StreamingForm:
    """A streaming model and what running it needs.

    ``model`` takes ``[audio [batch, hop_samples], *states]`` and returns
    ``[probabilities, *next_states]``, states in the order of ``states``.
    ``delay_samples``: the newest samples of each window that no output depends on (the window
    model ignores them too), so a sound reaches the output that much later than the window's end.
    """

    model: keras.Model
    sample_rate: int
    window_samples: int
    hop_samples: int
    frame_hop: int
    delay_samples: int
    states: list = field(default_factory=list)

    @property
    def warmup_hops(self):
        """Hops of zeros after which the state is that of a stream preceded by silence."""
        return -(-self.window_samples // self.hop_samples)

    def initial_states(self, batch=1):
        return [np.zeros((batch, *state.shape), np.float32) for state in self.states]

    def describe(self):
        """The streaming part of an exported model's sidecar."""
        rate = self.sample_rate
        return {"hop_samples": self.hop_samples, "hop_seconds": self.hop_samples / rate,
                "window_samples": self.window_samples, "frame_hop_samples": self.frame_hop,
                "delay_samples": self.delay_samples, "delay_seconds": self.delay_samples / rate,
                "warmup_hops": self.warmup_hops,
                "states": [{"name": state.name, "shape": [1, *state.shape], "dtype": "float32"}
                           for state in self.states]}


def streaming_form(model, hop_samples=None, hop_seconds=None):
    """The :class:`StreamingForm` of a raw-waveform classifier, or a :class:`CoughclfError` naming
    every layer that cannot stream and what to change.

    ``hop_samples`` (or ``hop_seconds``): audio per call (default :func:`default_hop`), a whole
    number of the front end's frames. The model is cloned, so ``model`` itself stays as it is.
    """
    from coughclf.layers.frontend import ShortTimeSpectrum

    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 2 or model.inputs[0].shape[1] is None:
        raise CoughclfError(f"{model.name} cannot stream: it takes {[tuple(t.shape) for t in model.inputs]}; "
                            "streaming needs a model with one raw-waveform input of fixed length "
                            "(input_mode='waveform', no metadata input)")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    front_end = next((layer for layer in clone.layers if isinstance(layer, ShortTimeSpectrum)), None)
    sample_rate = int(front_end.sample_rate) if front_end is not None else 16000
    frame_hop = int(front_end.hop_length) if front_end is not None else 1
    if hop_seconds is not None:
        hop_samples = int(round(hop_seconds * sample_rate))
    hop = int(hop_samples) if hop_samples else default_hop(frame_hop, sample_rate)
    if hop <= 0 or hop % frame_hop:
        raise CoughclfError(f"{model.name}: a hop of {hop} samples is not a whole number of its front end's "
                            f"frames ({frame_hop} samples, {frame_hop / sample_rate * 1000:g} ms); use a multiple "
                            f"of {frame_hop / sample_rate:g} s")
    converter = _Converter(clone, hop, sample_rate, frame_hop)
    return converter.build(converter.plan())


def advance(track, extent, stride, hop):
    """The :class:`Track` after a layer reading ``extent`` columns every ``stride`` columns of ``track``."""
    columns = (track.columns - extent) // stride + 1
    dropped = (track.columns - extent) % stride
    jump = track.jump * stride
    return Track(track.axis, columns, jump, track.lag + dropped * track.jump, math.gcd(hop, jump))


@dataclass(frozen=True)
class Refusal:
    """Why a layer cannot stream, what to change, and how to go on checking the layers after it."""

    why: str
    fix: str
    instead: tuple = ("window", None)


@dataclass
class _Step:
    """One layer of the window model, with how its output is computed in the stream: ``kind`` is one of
    :func:`classify`'s, or ``call`` (its inputs are whole-window tensors already), ``projects`` (a
    ``Flatten`` whose only reader is a ``Dense``: both as :mod:`coughclf.streaming.head`) and ``absorbed``
    (that ``Dense``)."""

    layer: object
    inputs: list
    output: object
    kind: str
    detail: object
    tracks: list
    track: object


class _Converter:
    def __init__(self, model, hop, sample_rate, frame_hop):
        self.model, self.hop, self.sample_rate, self.frame_hop = model, hop, sample_rate, frame_hop
        self.window = int(model.inputs[0].shape[1])
        self.state_inputs, self.state_outputs, self.states = [], [], []
        self.delay = 0

    def plan(self):
        """Every layer's :class:`_Step`; a :class:`CoughclfError` listing every layer that cannot stream."""
        tracks = {id(self.model.inputs[0]): Track(1, self.window, 1, 0, 1)}
        steps, refusals, absorbed = [], [], set()
        # Each layer's tensors in the window model, read before any layer is called again for the stream.
        layers = [(layer, layer.input if isinstance(layer.input, (list, tuple)) else [layer.input], layer.output)
                  for layer in self.model.layers if not isinstance(layer, keras.layers.InputLayer)]
        consumers = {}
        for layer, inputs, _ in layers:
            for tensor in inputs:
                consumers.setdefault(id(tensor), []).append(layer)
        for layer, inputs, output in layers:
            inputs_tracks = [tracks[id(tensor)] for tensor in inputs]
            kind, detail = self.decide(layer, inputs, inputs_tracks)
            following = consumers.get(id(output), [])
            if (kind == "window" and isinstance(layer, keras.layers.Flatten) and len(following) == 1
                    and type(following[0]) is keras.layers.Dense):
                kind, detail = "projects", following[0]  # see coughclf.streaming.head
                absorbed.add(id(following[0]))
            elif id(layer) in absorbed:
                kind = "absorbed"
            if kind == "refuse":
                refusals.append((layer, detail))
                kind, detail = detail.instead
            tracks[id(output)] = self.track_after(kind, detail, inputs_tracks)
            steps.append(_Step(layer, inputs, output, kind, detail, inputs_tracks, tracks[id(output)]))
        if refusals:
            raise CoughclfError(f"{self.model.name} cannot stream: {describe_refusals(refusals)}")
        if tracks[id(self.model.outputs[0])] is not None or len(self.model.outputs) != 1:
            raise CoughclfError(f"{self.model.name} cannot stream: its output keeps the time axis (one value per "
                                "frame, as a speech model's); streaming needs one output per window (a classifier)")
        return steps

    def decide(self, layer, inputs, tracks):
        if isinstance(layer, keras.Model):
            return "refuse", Refusal("is a whole model inside the model (a fold ensemble)",
                                     "stream each fold's model on its own")
        if all(track is None for track in tracks):
            return "call", None
        if len(inputs) == 1:
            return classify(layer, tuple(inputs[0].shape), tracks[0].axis)
        axis = getattr(layer, "axis", None)
        along_time = axis is not None and tracks[0] is not None and axis % len(inputs[0].shape) == tracks[0].axis
        if isinstance(layer, MERGES) and not along_time and all(track == tracks[0] for track in tracks):
            return "pointwise", None
        return "window", None

    def track_after(self, kind, detail, tracks):
        if kind in ("identity", "pointwise"):
            return tracks[0]
        if kind == "moves_time":
            track = tracks[0]
            return Track(detail[1], track.columns, track.jump, track.lag, track.spacing)
        if kind == "slides":
            return advance(tracks[0], *detail, self.hop)
        return None

    def build(self, steps):
        audio = keras.Input((self.hop,), name="audio")
        values = {id(self.model.inputs[0]): audio}
        for step in steps:
            tensors = [values[id(tensor)] for tensor in step.inputs]
            values[id(step.output)] = self.apply(step, tensors)
        streaming = keras.Model([audio, *self.state_inputs], [values[id(self.model.outputs[0])], *self.state_outputs],
                                name=f"{self.model.name}_streaming")
        return StreamingForm(streaming, self.sample_rate, self.window, self.hop, self.frame_hop, self.delay,
                             self.states)

    def apply(self, step, tensors):
        layer = step.layer
        if step.kind in ("identity", "absorbed"):
            return tensors[0]
        if step.kind == "projects":
            return self.projected_head(step.detail, tensors[0], step.tracks[0], tuple(step.inputs[0].shape[1:]))
        if step.kind == "moves_time":
            return step.detail[0](tensors[0])
        if step.kind == "slides":
            return self.slide(layer, tensors[0], step.tracks[0], step.track, step.detail[0])
        if step.kind == "window":
            tensors = [tensor if track is None else self.whole_window(layer, tensor, track, f"_{index}" * (index > 0))
                       for index, (tensor, track) in enumerate(zip(tensors, step.tracks))]
        return layer(tensors if len(tensors) > 1 else tensors[0])

    def slide(self, layer, tensor, track, out, extent):
        """The new columns of a layer reading ``extent`` columns of ``track`` at a time (STFT, convolution,
        pooling): in one call when they are ``hop``-aligned, else one call per new column."""
        count = self.hop // out.spacing
        dropped = (out.lag - track.lag) // track.jump
        lead = dropped * track.step  # grid offset (0 = newest) of the newest column the newest output reads
        between = out.spacing // track.spacing
        reach = (extent - 1) * track.step
        if out.spacing == out.jump:  # the new outputs are consecutive outputs of one call
            pieces = [(lead + (count - 1) * between + reach, lead, track.step)]
        else:
            pieces = [(lead + i * between + reach, lead + i * between, track.step) for i in reversed(range(count))]
        oldest = max(first for first, _, _ in pieces)
        outputs = [layer(piece) for piece in self.buffer(layer, tensor, track, oldest + 1, pieces)]
        if len(outputs) == 1:
            return outputs[0]
        return keras.layers.Concatenate(axis=track.axis, name=f"{layer.name}_columns")(outputs)

    def projected_head(self, dense, tensor, track, window_shape):
        """``Dense(Flatten(x))`` from each column's projections (:mod:`coughclf.streaming.head`)."""
        from coughclf.streaming.head import ColumnProjection, ProjectionSum, column_kernels

        kernel = keras.ops.convert_to_numpy(dense.kernel)
        projection = ColumnProjection(dense.units, track.columns, track.axis, name=f"{dense.name}_projection")
        projected = projection(tensor)
        projection.set_weights([column_kernels(kernel, window_shape, track.axis)])
        projected_track = Track(1, track.columns, track.jump, track.lag, track.spacing)
        total = ProjectionSum(dense.activation, name=f"{dense.name}_sum")
        output = total(self.whole_window(dense, projected, projected_track))
        bias = keras.ops.convert_to_numpy(dense.bias) if dense.use_bias else np.zeros(dense.units, np.float32)
        total.set_weights([bias])
        return output

    def whole_window(self, layer, tensor, track, suffix=""):
        """The window model's ``N`` columns of ``tensor``, for a layer that reads them all."""
        self.delay = max(self.delay, track.lag)
        oldest = (track.columns - 1) * track.step
        return self.buffer(layer, tensor, track, oldest + 1, [(oldest, 0, track.step)], suffix)[0]

    def buffer(self, layer, tensor, track, needed, pieces, suffix=""):
        """Pieces ``(oldest, newest, step)`` (grid offsets, 0 = this hop's newest column) of ``tensor``'s
        last ``needed`` grid columns, the older of which become a state input and output."""
        new = self.hop // track.spacing
        kept = max(0, needed - new)
        length = kept + new
        slices = [(length - 1 - oldest, length - newest, step) for oldest, newest, step in pieces]
        name = f"{layer.name}{suffix}"
        inputs = [tensor]
        if kept:
            shape = list(tensor.shape[1:])
            shape[track.axis - 1] = kept
            state = keras.Input(tuple(shape), name=f"{name}_state")
            self.state_inputs.append(state)
            self.states.append(StateSpec(f"{name}_state", tuple(shape)))
            inputs = [state, tensor]
        outputs = StreamBuffer(track.axis, kept, slices, name=f"{name}_buffer")(inputs)
        if kept:
            self.state_outputs.append(outputs[0])
            outputs = outputs[1:]
        return outputs


def classify(layer, shape, axis):
    """How ``layer`` treats time on an input of window shape ``shape`` whose time axis is ``axis``:
    ``(kind, detail)`` with kind ``identity``, ``pointwise``, ``moves_time`` (detail: the layer for the
    stream and the new axis), ``slides`` (detail: extent and stride in columns), ``window`` or
    ``refuse`` (detail: a :class:`Refusal`)."""
    from coughclf.layers.augment_base import RandomAugmentation
    from coughclf.layers.frontend import FrameFeature, LogMelSpectrogram, ShortTimeSpectrum
    from coughclf.layers.kaldi import KaldiFbank
    from coughclf.layers.pcm import PCMToFloat
    from coughclf.layers.spectrogram_augment import SpecAugment

    rank = len(shape)
    if isinstance(layer, (RandomAugmentation, SpecAugment, *IDENTITIES)):  # identities at inference
        return "identity", None
    if isinstance(layer, (ShortTimeSpectrum, FrameFeature)):
        extent = layer.win_length if isinstance(layer, KaldiFbank) else getattr(layer, "n_fft", None)
        sliding = ("slides", (extent or layer.frame_length, layer.hop_length))
        problem = frontend_problem(layer.get_config()) if isinstance(layer, LogMelSpectrogram) else (
            ("pads each window's edges (center=True)", "build it with center=False") if getattr(layer, "center", False)
            else None)
        return ("refuse", Refusal(*problem, instead=sliding)) if problem else sliding
    if isinstance(layer, SLIDING):
        return _sliding(layer, rank, axis)
    if isinstance(layer, PADDINGS):
        return _padding(layer, rank, axis)
    if isinstance(layer, (PCMToFloat, *POINTWISE)):
        return "pointwise", None
    if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.Softmax)):
        normalised = {a % rank for a in np.atleast_1d(layer.axis)}
        return ("window", None) if axis in normalised else ("pointwise", None)
    across_features = isinstance(layer, keras.layers.Dense) or (
        isinstance(layer, keras.layers.Activation) and "softmax" in getattr(layer.activation, "__name__", ""))
    if across_features or isinstance(layer, keras.layers.Activation):
        return ("window", None) if across_features and axis == rank - 1 else ("pointwise", None)
    if isinstance(layer, keras.layers.Permute):
        return "moves_time", (layer, list(layer.dims).index(axis) + 1)
    if isinstance(layer, keras.layers.Reshape):
        return _reshape(layer, shape, axis)
    return _whole_window_or_refused(layer, axis)


def _sliding(layer, rank, axis):
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    spatial = list(range(2, rank)) if channels_first else list(range(1, rank - 1))
    if axis not in spatial:
        return "window", None  # time is the channel axis: every output reads every column
    index = spatial.index(axis)
    size = getattr(layer, "kernel_size", None) or layer.pool_size
    dilation = getattr(layer, "dilation_rate", (1,) * len(spatial))[index]
    sliding = ("slides", ((size[index] - 1) * dilation + 1, layer.strides[index]))
    if layer.padding != "valid":
        return "refuse", Refusal(f"pads the time axis (padding='{layer.padding}'): the window's edges are zeros in "
                                 "the window model and real audio in a stream",
                                 "build it with padding='valid' along time", instead=sliding)
    return sliding


def _padding(layer, rank, axis):
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    spatial = list(range(2, rank)) if channels_first else list(range(1, rank - 1))
    padding = np.asarray(layer.padding).reshape(len(spatial), 2) if axis in spatial else None
    if padding is None or not padding[spatial.index(axis)].any():
        return "pointwise", None
    return "refuse", Refusal("pads the time axis with zeros at each window's edges, where a stream has real audio",
                             "build the model without padding along time (kws_cnn, kws_crnn: [model] time_padding = "
                             "0)", instead=("pointwise", None))


def _reshape(layer, shape, axis):
    """A reshape that keeps time as one axis moves it; one that merges it with another reads the window."""
    target = (shape[0], *layer.target_shape)
    before, after = int(np.prod(shape[1:axis])), int(np.prod(shape[axis + 1:]))
    for position in range(1, len(target)):
        if (int(np.prod(target[1:position])) == before and target[position] == shape[axis]
                and int(np.prod(target[position + 1:])) == after):
            return "moves_time", (_StreamReshape(layer, position), position)
    return "window", None


class _StreamReshape:
    """A ``Reshape`` like ``layer`` whose time entry is the new columns' count, built when called."""

    def __init__(self, layer, position):
        self.layer, self.position = layer, position

    def __call__(self, tensor):
        target = list(self.layer.target_shape)
        target[self.position - 1] = tensor.shape[self.position]
        return keras.layers.Reshape(tuple(target), name=f"{self.layer.name}_stream")(tensor)


def _whole_window_or_refused(layer, axis):
    from coughclf.layers.blocks import (ClassTokens, PositionalEncoding, SplitHeadSelfAttention, TimeLinearPooling,
                                        TransformerEncoderLayer)
    from coughclf.layers.rnn import SharedInputBiRNN

    if isinstance(layer, (keras.layers.Flatten, TimeLinearPooling, *GLOBAL_POOLING)):
        return "window", None
    recurrent = isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional, SharedInputBiRNN))
    if recurrent and axis != 1:
        return "window", None  # the recurrence runs across frequency or channels, each step seeing the window
    if isinstance(layer, (keras.layers.Bidirectional, SharedInputBiRNN)):
        return "refuse", Refusal("runs over time in both directions: its backward half reads each window's end before "
                                 "its start, which a stream has not heard yet", CONVOLUTIONAL_FIX)
    if recurrent:
        return "refuse", Refusal("runs over time from a zero state at each window's start, so carrying its state "
                                 "from hop to hop would not give the window model's output", CONVOLUTIONAL_FIX)
    attention = (keras.layers.MultiHeadAttention, keras.layers.Attention, SplitHeadSelfAttention,
                 TransformerEncoderLayer, ClassTokens, PositionalEncoding)
    if isinstance(layer, attention):
        return "refuse", Refusal("attends over (or indexes) the positions of the whole window, so nothing it "
                                 "computes carries over to the next hop", CONVOLUTIONAL_FIX)
    return "refuse", Refusal("has no streaming rule here (how it treats time is unknown)",
                             "use a model of convolutions, pooling and a flatten head, or add a rule to "
                             "coughclf/streaming/convert.py")


def describe_refusals(refusals):
    """``[(layer, Refusal)]`` in one line, layers refused for the same reason together."""
    grouped = {}
    for layer, refusal in refusals:
        grouped.setdefault((refusal.why, refusal.fix), []).append(layer)
    parts = []
    for (why, fix), layers in grouped.items():
        first, others = layers[0], layers[1:]
        likewise = f", and likewise {', '.join(repr(layer.name) for layer in others)}" if others else ""
        parts.append(f"layer '{first.name}' ({type(first).__name__}{likewise}) {why}; {fix}")
    return "; ".join(parts)


IDENTITIES = (keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
              keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.AlphaDropout,
              keras.layers.Identity, keras.layers.ActivityRegularization)
SLIDING = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
           keras.layers.SeparableConv1D, keras.layers.SeparableConv2D, keras.layers.MaxPooling1D,
           keras.layers.MaxPooling2D, keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)
PADDINGS = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D)
POINTWISE = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.Rescaling)
GLOBAL_POOLING = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
                  keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D)
MERGES = (keras.layers.Concatenate, keras.layers.Add, keras.layers.Multiply, keras.layers.Average,
          keras.layers.Maximum, keras.layers.Minimum, keras.layers.Subtract)
