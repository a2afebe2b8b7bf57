"""The library internals coughclf relies on where no public API does the same, in one place.

Each entry says why the public API is not enough; ``tests/test_compat.py`` checks that
each still exists with the signature used here, so a library upgrade that changes one
fails there, by name, instead of deep inside a training step.
"""

import contextlib


def backend_rnn():
    """Keras' own loop driver of recurrent layers (``keras.src.backend.rnn``).

    :class:`coughclf.layers.blocks.InputProjectedLSTM` runs its recurrence through it so
    that it keeps ``keras.layers.LSTM``'s conventions (``go_backwards``, ``unroll``,
    ``return_all_outputs``) on every backend. The public ``keras.ops.scan`` cannot stand
    in: on TensorFlow it does not compile under XLA (``jit_compile``).
    """
    from keras.src import backend

    return backend.rnn


# The keyword arguments coughclf passes to backend_rnn(); checked by tests/test_compat.py.
BACKEND_RNN_ARGUMENTS = ("go_backwards", "unroll", "input_length", "return_all_outputs")


@contextlib.contextmanager
def without_training_state(model):
    """``model`` seen as uncompiled inside the block, so that ``model.save`` writes the model alone.

    Keras 3 saves a compiled model's optimizer variables with it and has no option to leave
    them out (Keras 2's ``include_optimizer`` is gone): Adam's two moments made resnet18's
    best.keras three times the size of its weights. ``save`` walks ``model.optimizer`` and
    writes a compile config while ``model.compiled``; both are set back on leaving the block.
    """
    optimizer, compiled = model.optimizer, model.compiled
    model.optimizer, model.compiled = None, False
    try:
        yield model
    finally:
        model.optimizer, model.compiled = optimizer, compiled
