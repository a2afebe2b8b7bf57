"""One module per CLI subcommand.

Each module defines ``HELP`` (one line), ``EXAMPLE`` (shown in ``--help``),
``add_arguments(parser)`` and ``run(args) -> int | None``. Modules must import
heavy libraries (TensorFlow, Keras, librosa) inside ``run`` so that
``coughclf --help`` stays fast. The CLI discovers the modules by itself, and imports
TensorFlow (quietly) before ``run`` unless the module sets ``NEEDS_TENSORFLOW = False``.
"""
