"""Reading one ``KEY=VALUE`` assignment exactly (``--set``, ``--option``): a dotted key and one value.

The value is read as TOML (numbers, booleans, lists, quoted strings) and, failing that, kept as
plain text (``--set data.dataset=esc10``). Exactly one assignment is read, or an error says what
could not be: ``--set`` once parsed the text after ``=`` as a whole TOML document and kept its first
value, so ``$'train.batch_size=8\\n[train]\\nepochs = 500'`` set the batch size and silently dropped
the rest.
"""

import re
import tomllib

from coughclf.errors import CoughclfError

# A TOML bare key: what every config key is, and what a key of [data].options or [model] can be.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Text that starts like a TOML string, list or table is meant as one: it must be valid, not plain text.
_TOML_OPENERS = ('"', "'", "[", "{")
# In plain text, " key=..." after a space is a second assignment that lacks its own flag.
_SECOND_ASSIGNMENT = re.compile(r"\s([A-Za-z0-9_.-]+\s*=.*)")


def split_assignment(assignment, flag="--set"):
    """``(key parts, value text)`` of one ``section.key=value``; an error naming ``flag`` for a line break
    (a second line, a table header), a missing ``=`` or a key part that is not a name."""
    if any(ord(character) < 32 for character in assignment):
        raise CoughclfError(f"{flag} {assignment!r}: holds a line break or control character; give one "
                            f"key=value per {flag} (a table header or a second line is not read)")
    dotted, separator, text = assignment.partition("=")
    parts = [part.strip() for part in dotted.split(".")]
    if not separator or not all(_BARE_KEY.fullmatch(part) for part in parts):
        raise CoughclfError(f"{flag} {assignment!r}: write it as section.key=value with names of letters, "
                            f"digits, '_' and '-', e.g. {flag} optimizer.lr=1e-4")
    return parts, text.strip()


def parse_value(text, where="--set"):
    """``text`` read as one TOML value, else as plain text; an error naming ``where`` when it starts like
    TOML (a quote, ``[`` or ``{``) but is not valid, or when a second ``key=value`` follows it."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as error:
        if text.startswith(_TOML_OPENERS):
            raise CoughclfError(f"{where}: {text!r} is not a valid TOML value ({error}); close its quotes and "
                                "brackets, e.g. [1, 2] or \"some text\"") from None
        second = _SECOND_ASSIGNMENT.search(text)
        if second:
            raise CoughclfError(f"{where}: {second.group(1)!r} reads as a second assignment; give each key=value "
                                "its own flag, or quote text that holds one (\"a b=c\")") from None
        return text
