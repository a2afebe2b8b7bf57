"""Streaming inference: a trained classifier run hop by hop with its state carried between hops.

* :mod:`~coughclf.streaming.settings` — which models and settings stream (plain data);
* :mod:`~coughclf.streaming.convert` — :func:`streaming_form`: the model's streaming form,
  rebuilt from its layers and weights, exact against the window model (and which models and
  settings cannot stream, and why);
* :mod:`~coughclf.streaming.buffer` — :class:`StreamBuffer`, the ring buffer layer it adds;
* :mod:`~coughclf.streaming.runner` — running a streaming form (Keras or TFLite) over audio;
* :mod:`~coughclf.streaming.events` — class scores per hop → events (label, start, end, score);
* :mod:`~coughclf.streaming.export` — the TFLite streaming export (state as explicit
  inputs and outputs, built-in ops only).

The modes of a model, named once: *training* and *window inference* are the model as trained
(``training=True`` / ``False``); *streaming* is its streaming form, whose state is always
external (model inputs and outputs): :class:`~coughclf.streaming.runner.KerasStream` and
:class:`~coughclf.streaming.runner.TFLiteStream` keep it between calls for Python callers.
"""

from coughclf.streaming.settings import (STREAMING_FRONTEND, STREAMING_OPTIONS,  # noqa: F401
                                         streaming_options)


def __getattr__(name):
    """``streaming_form`` and ``StreamingForm`` load Keras: only when asked for (PEP 562)."""
    if name in ("streaming_form", "StreamingForm"):
        from coughclf.streaming import convert

        return getattr(convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
