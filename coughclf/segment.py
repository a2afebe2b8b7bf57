"""Energy-based silence trimming and cough-event segmentation.

Two of the reports cut recordings before training: leading/trailing silence
removed, or each cough event kept as its own example. Both work on frame RMS
energy in dB relative to the clip's loudest frame, so a threshold means the same
on a quiet phone line and a loud close-talk microphone.

The keyword defaults below are the ``[prepare]`` settings of the config:
``TRIM_DEFAULTS`` for ``trim_silence`` and ``SEGMENT_DEFAULTS`` for
``segment_events``.
"""

import numpy as np

TRIM_DEFAULTS = {"threshold_db": -40.0, "frame_length": 1024, "hop_length": 256, "pad_seconds": 0.05}
SEGMENT_DEFAULTS = {"threshold_db": -30.0, "min_event_seconds": 0.1, "max_gap_seconds": 0.15,
                    "pad_seconds": 0.05, "frame_length": 1024, "hop_length": 256}


def frame_energy_db(audio, frame_length=1024, hop_length=256):
    """RMS energy of each frame in dB relative to the loudest frame (0 dB = loudest).

    Frame ``i`` covers samples ``[i * hop_length, i * hop_length + frame_length)``;
    a clip shorter than one frame is one zero-padded frame.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size < frame_length:
        audio = np.pad(audio, (0, frame_length - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame_length)[::hop_length]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    peak = max(float(rms.max()), 1e-12)
    return 20.0 * np.log10(np.maximum(rms, 1e-12) / peak)


def trim_silence(audio, sample_rate, threshold_db=TRIM_DEFAULTS["threshold_db"],
                 frame_length=TRIM_DEFAULTS["frame_length"], hop_length=TRIM_DEFAULTS["hop_length"],
                 pad_seconds=TRIM_DEFAULTS["pad_seconds"]):
    """``audio`` without the leading and trailing frames quieter than ``threshold_db`` (relative to
    the loudest frame), keeping ``pad_seconds`` of context on each side."""
    loud = np.flatnonzero(frame_energy_db(audio, frame_length, hop_length) >= threshold_db)
    start, end = _frames_to_samples(loud[0], loud[-1], len(audio), sample_rate, frame_length,
                                    hop_length, pad_seconds)
    return audio[start:end]


def segment_events(audio, sample_rate, threshold_db=SEGMENT_DEFAULTS["threshold_db"],
                   min_event_seconds=SEGMENT_DEFAULTS["min_event_seconds"],
                   max_gap_seconds=SEGMENT_DEFAULTS["max_gap_seconds"],
                   pad_seconds=SEGMENT_DEFAULTS["pad_seconds"],
                   frame_length=SEGMENT_DEFAULTS["frame_length"], hop_length=SEGMENT_DEFAULTS["hop_length"]):
    """Sound events (coughs) in ``audio`` as ``[(start_sample, end_sample), ...]`` in time order.

    An event is a run of frames louder than ``threshold_db`` (relative to the loudest
    frame); runs separated by less than ``max_gap_seconds`` are one event (the phases
    of one cough), events shorter than ``min_event_seconds`` (clicks) are dropped, and
    each event is widened by ``pad_seconds`` on both sides, never overlapping the next.
    """
    loud = frame_energy_db(audio, frame_length, hop_length) >= threshold_db
    edges = np.diff(np.concatenate([[0], loud.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))
    max_gap_frames = max_gap_seconds * sample_rate / hop_length
    merged = []
    for first, last in runs:
        if merged and first - merged[-1][1] - 1 < max_gap_frames:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    events = []
    for first, last in merged:
        start, end = _frames_to_samples(first, last, len(audio), sample_rate, frame_length, hop_length, 0.0)
        if (end - start) / sample_rate < min_event_seconds:
            continue
        pad = int(round(pad_seconds * sample_rate))
        start = max(start - pad, events[-1][1] if events else 0)
        events.append((start, min(end + pad, len(audio))))
    return events


def _frames_to_samples(first_frame, last_frame, num_samples, sample_rate, frame_length, hop_length,
                       pad_seconds):
    # Each frame stands for the hop around its centre: a one-sample click lights up
    # frame_length / hop_length overlapping frames but spans only that many hops.
    centre_offset = (frame_length - hop_length) // 2
    pad = int(round(pad_seconds * sample_rate))
    start = max(int(first_frame) * hop_length + centre_offset - pad, 0)
    end = min((int(last_frame) + 1) * hop_length + centre_offset + pad, num_samples)
    return start, end
