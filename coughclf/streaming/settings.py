"""What streaming asks of a model's settings, as plain data: importing this loads no Keras (the command
line reads it while it builds its options).

* :data:`STREAMING_FRONTEND` — the log-mel options under which each window's frames are the stream's
  frames, and :func:`frontend_problem`, which says in words why other settings are not;
* :data:`STREAMING_OPTIONS` / :func:`streaming_options` — the registry's models that stream and the
  builder options they stream with (the experiments' streaming recipes set the same);
* :func:`default_hop` — 20 ms in whole front-end frames.
"""

import math

from coughclf.errors import CoughclfError

# The default hop: the fewest front-end frames that last at least this long.
DEFAULT_HOP_SECONDS = 0.02
HOP_HELP = "audio per call of the streaming model (default: 20 ms in whole front-end frames)"
# Settings of the front end (LogMelSpectrogram options) under which each window's frames are the stream's.
STREAMING_FRONTEND = {"center": False, "ref": 1.0, "top_db": None, "normalize": None}
# The registry's models that stream, and the builder options (beyond STREAMING_FRONTEND) they need: no zero
# padding along time, and for the digit models 10 ms frames, which give kws_cnn the 46 frames its unpadded
# layers read (94 per second: the report's flatten size) and a 20 ms hop of two frames.
STREAMING_OPTIONS = {
    "kws_cnn": {"time_padding": 0, "frontend": {"hop_length": 160}},
    "kws_crnn": {"time_padding": 0, "frontend": {"hop_length": 160}},
    "kws_parallel_cnn_lstm": {"frontend": {"hop_length": 160}},
    "cough_small_cnn": {},
    "cough_large_cnn": {},
}


FRONTEND_PROBLEMS = (
    ("center", lambda value: value, "center=True pads its edges", "center = false"),
    ("ref", lambda value: value == "max", "ref='max' references its loudest bin (librosa's ref=np.max)",
     "ref = 1.0"),
    ("top_db", lambda value: value is not None, "top_db clips it below its own maximum", 'top_db = "none"'),
    ("normalize", lambda value: value is not None, "normalize='per_example' scales it by its own statistics",
     'normalize = "none"'),
)


def frontend_problem(config):
    """``(why, fix)`` when a log-mel front end with layer config ``config`` cannot stream, else None."""
    found = [(why, setting) for key, wrong, why, setting in FRONTEND_PROBLEMS if key in config and wrong(config[key])]
    if not found:
        return None
    return (f"computes each window's frames from the whole window ({'; '.join(why for why, _ in found)}), so no "
            "frame of a window is a frame of the stream",
            "train with [frontend] " + ", ".join(setting for _, setting in found))


def streaming_options(name):
    """Builder options (``input_mode="waveform"`` included) with which the registry's model ``name`` streams."""
    from coughclf import models

    if name not in STREAMING_OPTIONS:
        raise CoughclfError(f"{name} has no streaming settings; the models that stream are "
                            f"{', '.join(STREAMING_OPTIONS)} (see docs/streaming.md)")
    options = STREAMING_OPTIONS[name]
    frontend = {**models.spec(name).defaults["frontend"], **options.get("frontend", {}), **STREAMING_FRONTEND}
    return {**options, "input_mode": "waveform", "frontend": frontend}


def default_hop(frame_hop, sample_rate):
    """The fewest whole front-end frames lasting at least :data:`DEFAULT_HOP_SECONDS`."""
    return frame_hop * max(1, math.ceil(DEFAULT_HOP_SECONDS * sample_rate / frame_hop - 1e-9))
