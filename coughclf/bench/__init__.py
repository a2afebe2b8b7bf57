"""Benchmarks for ``coughclf bench NAME``: one module per benchmark.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> dict`` returning JSON-serialisable results; the command prints
them as JSON (``--json``) or as an indented summary.
"""
