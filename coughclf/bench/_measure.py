"""What the benchmarks share: interleaved timing, and inputs and compiled calls on the backend's device.

Nothing here imports TensorFlow unless Keras runs on it: ``bench train`` and ``bench
frontend`` must run on GPU machines that have JAX (or PyTorch) and no TensorFlow.
Accelerators run asynchronously, so every timed call here ends with
:func:`synchronize` — a timing without it would measure only the dispatch.
"""

import os
import platform
import time

import numpy as np


def interleaved_milliseconds(calls, repeats, warmup, seed=0):
    """Per ``calls[name]()``: wall-clock ``median``, ``p10``, ``p90`` and process-CPU ``cpu_median``
    in ms, timed round by round (every call once per round, in a fresh random order), so that a
    change in the machine's load hits every call alike."""
    rng = np.random.default_rng(seed)
    names = list(calls)
    wall, cpu = {name: [] for name in names}, {name: [] for name in names}
    for round_index in range(warmup + repeats):
        for position in rng.permutation(len(names)):
            name = names[position]
            started, started_cpu = time.perf_counter(), time.process_time()
            calls[name]()
            if round_index >= warmup:
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
    return {name: {"median": _ms(np.median(wall[name])), "p10": _ms(np.percentile(wall[name], 10)),
                   "p90": _ms(np.percentile(wall[name], 90)), "cpu_median": _ms(np.median(cpu[name]))}
            for name in names}


def _ms(seconds):
    return round(1000 * float(seconds), 3)


def synchronize(tensor):
    """Wait until ``tensor`` (a backend tensor, or a nest of them) is computed on its device."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.block_until_ready(tensor)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        # Fetching one element waits for the whole computation without copying it back.
        first = keras.tree.flatten(tensor)[0]
        keras.ops.convert_to_numpy(keras.ops.reshape(first, (-1,))[:1])


def to_device(array):
    """``array`` as a backend tensor on Keras' default device, the copy finished."""
    import keras

    tensor = keras.ops.convert_to_tensor(array)
    synchronize(tensor)
    return tensor


def compiled_call(model, training):
    """``call(x) -> y``: the model's forward pass compiled by the backend (XLA on JAX and TensorFlow;
    eager on PyTorch), in training mode or not. Stateful layers (random augmentation seeds) carry
    their state from call to call, as in training."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        trainable = [variable.value for variable in model.trainable_variables]
        state = {"non_trainable": [variable.value for variable in model.non_trainable_variables]}
        forward = jax.jit(lambda trainable, non_trainable, x: model.stateless_call(
            trainable, non_trainable, x, training=training))

        def call(x):
            y, state["non_trainable"] = forward(trainable, state["non_trainable"], x)
            return y
        return call
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: model(x, training=training), jit_compile=True)
    return lambda x: model(x, training=training)


def describe_machine():
    """The backend, its devices and the library versions: what a figure needs beside it."""
    import keras

    backend = keras.backend.backend()
    described = {"backend": backend, "keras": keras.__version__, "cpu_cores": os.cpu_count(),
                 "machine": platform.machine(), "load_average": round(os.getloadavg()[0], 2)}
    if backend == "jax":
        import jax

        described.update(jax=jax.__version__, devices=[str(device) for device in jax.devices()],
                         matmul_precision=jax.config.jax_default_matmul_precision)
    elif backend == "tensorflow":
        import tensorflow as tf

        described.update(tensorflow=tf.__version__,
                         devices=[device.name for device in tf.config.list_logical_devices()])
    elif backend == "torch":
        import torch

        described.update(torch=torch.__version__, devices=[str(keras.ops.zeros(()).device)])
    return described


def megabytes(array):
    return round(array.nbytes / 2**20, 2)
