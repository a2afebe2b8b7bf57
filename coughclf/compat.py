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


def tflite_operators(interpreter):
    """The operators of a LiteRT ``Interpreter``'s graph: dicts with ``op_name``, ``inputs``, ``outputs``
    (tensor indices), from ``Interpreter._get_ops_details``.

    :mod:`coughclf.pretrained.tflite_weights` reads a ``.tflite`` file's weights and needs to tell
    its constant tensors (inputs of operators that no operator writes) from its activations;
    ``get_tensor_details`` lists both alike, and the public API has no other view of the graph.
    """
    return interpreter._get_ops_details()


@contextlib.contextmanager
def without_training_state(model):
    """``model`` seen as uncompiled inside the block, so that ``model.save`` writes the model alone.

    Keras 3 saves a compiled model's optimizer variables with it and has no option to leave
    them out (Keras 2's ``include_optimizer`` is gone): Adam's two moments made resnet18's
    best.keras three times the size of its weights. ``save`` walks ``model.optimizer`` and
    writes a compile config while ``model.compiled``; both are set back on leaving the block. A model
    never compiled (a whole model saved in place of the head that trained) is saved as it is.
    """
    if not getattr(model, "compiled", False):
        yield model
        return
    optimizer, compiled = model.optimizer, model.compiled
    model.optimizer, model.compiled = None, False
    try:
        yield model
    finally:
        model.optimizer, model.compiled = optimizer, compiled
