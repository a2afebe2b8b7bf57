"""What the streaming tests share: real recordings, the window model's outputs hop by hop, unsaturated heads."""

import keras
import numpy as np


def recording(paths, sample_rate=16000, gap_seconds=0.1):
    """The clips at ``paths`` (decoded at ``sample_rate``) one after another with short silences between."""
    from coughclf.audio import load_audio

    gap = np.zeros(int(gap_seconds * sample_rate), np.float32)
    return np.concatenate([part for path in paths for part in (load_audio(path, sample_rate), gap)])


def window_outputs(model, audio, hop, hops):
    """The window model's outputs on the windows ending after each of the first ``hops`` hops of ``audio``,
    silence before it (what a stream primed with silence sees)."""
    window = int(model.inputs[0].shape[1])
    padded = np.concatenate([np.zeros(window, np.float32), audio, np.zeros(hops * hop, np.float32)])
    ends = window + hop * np.arange(1, hops + 1)
    return model.predict(np.stack([padded[end - window:end] for end in ends]), verbose=0, batch_size=16)


def stream_outputs(stream, audio, hops):
    """The stream's outputs after each of the first ``hops`` hops of ``audio``."""
    from coughclf.streaming.runner import hop_outputs

    outputs = [probabilities for _, probabilities in hop_outputs(stream, [audio[:hops * stream.hop_samples]])]
    return np.stack(outputs)


def unsaturate(model, audio, layer="classifier"):
    """Scale the classifier's kernel so that its logits on ``audio`` vary by about 1: a random network on
    unnormalised decibels gives probabilities of exactly 0 and 1, where no difference would show."""
    head = model.get_layer(layer)
    window = int(model.inputs[0].shape[1])
    clip = np.pad(audio[:window], (0, max(0, window - len(audio))))
    features = keras.Model(model.inputs, head.input).predict(clip[None], verbose=0)
    kernel, bias = head.get_weights()
    logits = features @ kernel
    head.set_weights([kernel / max(float(np.std(logits)), 1e-6), bias])
    return model
