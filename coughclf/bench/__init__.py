"""Benchmarks for ``coughclf bench NAME``: one module per benchmark.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> dict`` returning JSON-serialisable results; the command prints
them as JSON (``--json``) or as an indented summary. TensorFlow is imported before
``run`` unless the module sets ``NEEDS_TENSORFLOW = False`` (``train`` and
``frontend``, which run on machines with only JAX or PyTorch). Modules named
``_*`` are helpers the benchmarks share, not benchmarks.
"""
