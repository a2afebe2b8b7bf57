"""TOML writing, which the standard library lacks (``tomllib`` only reads): the subset configs use.

Values are booleans, numbers (NaN and infinities included), strings, lists and inline tables;
nested dicts become ``[a.b]`` tables; None values are left out, so ``tomllib`` reads the text
back to the same dict without them.
"""

import json
import math


def _key(key):
    key = str(key)
    bare = key and all(c.isalnum() or c in "-_" for c in key)
    return key if bare else json.dumps(key)


def _value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


def _write_table(lines, prefix, table):
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append(f"\n[{prefix}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _write_table(lines, f"{prefix}.{_key(key)}" if prefix else _key(key), value)


def dumps_toml(table) -> str:
    """``table`` (a dict of dicts and values) as TOML text."""
    lines = []
    _write_table(lines, "", table)
    return "\n".join(lines).lstrip("\n") + "\n"
