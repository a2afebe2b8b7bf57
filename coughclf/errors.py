"""User-facing errors.

Raise :class:`CoughclfError` for anything the user can fix (a bad path, a bad
config key, an undecodable file). The CLI prints its message as one line and
exits non-zero; tracebacks appear only with ``--debug``.
"""

import difflib


class CoughclfError(Exception):
    """An error whose message says what went wrong, which file, and what to do."""


class AudioDecodeError(CoughclfError):
    """A file could not be turned into audio; ``reason`` is short enough for skipped.csv."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def unknown_key(name, where, known, path):
    """Raise the one-line error for an unknown key ``where`` in ``path``, suggesting the closest of ``known``."""
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise CoughclfError(f"{path}: unknown key {where!r}{suggestion}; valid keys here: "
                        f"{', '.join(sorted(known))}")


def unknown_value(value, where, known, path, what):
    """Raise the one-line error for ``where = value`` not among ``known`` (``what`` they are), with a suggestion."""
    hint = difflib.get_close_matches(str(value), known, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise CoughclfError(f"{path}: {where} = {value!r} is not one of {what}{suggestion}: {', '.join(known)}")
