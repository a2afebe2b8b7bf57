"""What the streaming tests share: real recordings, the window model's outputs hop by hop, unsaturated heads."""

import functools

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


TONES = {"low": 600.0, "high": 2500.0}
TONE_LABELS = ["low", "high", "background"]
TONE_RATE, TONE_WINDOW = 16000, 4000  # 0.25 s windows


def noise(samples, rng, level=None):
    return (level or rng.uniform(0.01, 0.04)) * rng.standard_normal(samples).astype(np.float32)


def tone_burst(label, samples, rng):
    time_axis = np.arange(samples) / TONE_RATE
    return (rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * TONES[label] * time_axis + rng.uniform(0, 2 * np.pi))
            ).astype(np.float32)


@functools.cache  # trained once per test process: the export and predict tests share it, and change nothing
def tone_detector(seed=0, clips=360, epochs=12):
    """A tiny streamable classifier trained to tell a 600 Hz tone, a 2.5 kHz tone and noise apart in 0.25 s
    windows. Global pooling over time makes its score depend on how much of a tone the window holds, not
    where: a window's score rises as it takes in a burst and falls as it lets it go, symmetrically."""
    from coughclf.layers import LogMelSpectrogram
    from coughclf.streaming import STREAMING_FRONTEND

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = keras.Input((TONE_WINDOW,), name="audio")
    x = LogMelSpectrogram(sample_rate=TONE_RATE, n_fft=256, hop_length=128, n_mels=16, **STREAMING_FRONTEND,
                          name="log_mel")(inputs)
    x = keras.layers.Rescaling(1 / 20, offset=3.0, name="scale")(x)  # decibels to about [-2, 4]
    x = keras.layers.Reshape((*x.shape[1:], 1), name="image")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="columns")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pooled")(x)  # over time only: which band rings still shows
    outputs = keras.layers.Dense(len(TONE_LABELS), activation="softmax", name="classifier")(x)
    model = keras.Model(inputs, outputs, name="tone_detector")
    labels = rng.integers(0, len(TONE_LABELS), clips)
    audio = np.stack([noise(TONE_WINDOW, rng) + (tone_burst(TONE_LABELS[label], TONE_WINDOW, rng)
                                                if label < 2 else 0) for label in labels])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(audio, labels, batch_size=32, epochs=epochs, verbose=0)
    return model


def tone_recording(bursts, seconds, seed=1):
    """Noise of ``seconds`` with a 0.25 s burst of each ``(label, start second)`` of ``bursts``."""
    rng = np.random.default_rng(seed)
    audio = noise(int(seconds * TONE_RATE), rng, level=0.02)
    for label, start in bursts:
        begin = int(round(start * TONE_RATE))
        audio[begin:begin + TONE_WINDOW] += tone_burst(label, TONE_WINDOW, rng)
    return audio
