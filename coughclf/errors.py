"""User-facing errors.

Raise :class:`CoughclfError` for anything the user can fix (a bad path, a bad
config key, an undecodable file). The CLI prints its message as one line and
exits non-zero; tracebacks appear only with ``--debug``.
"""


class CoughclfError(Exception):
    """An error whose message says what went wrong, which file, and what to do."""


class AudioDecodeError(CoughclfError):
    """A file could not be turned into audio; ``reason`` is short enough for skipped.csv."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
