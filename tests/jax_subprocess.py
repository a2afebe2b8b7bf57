"""Running code under ``KERAS_BACKEND=jax`` on the CPU, in a child process (this one runs TensorFlow)."""

import os
import subprocess
import sys

# XLA's CPU compiler dominates these tests (every new shape compiles); its cheaper settings cut it by more
# than half, and the tests compare numbers, not speed.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def jax_environment(**extra):
    """``os.environ`` with Keras on JAX on the CPU, quick to compile; ``extra`` added (XLA_FLAGS joined)."""
    flags = " ".join(filter(None, [FAST_COMPILE, extra.pop("XLA_FLAGS", "")]))
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags, **extra}


def run_on_jax(code, *args, cwd=None, timeout=600, **extra_environment):
    """Run ``python -c code *args`` on JAX; returns the finished process (stdout and stderr as text)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=jax_environment(**extra_environment),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
