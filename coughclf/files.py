"""Atomic file writing: every file coughclf writes appears whole or not at all.

A run can be killed at any moment (a kill, a full disk, a preempted machine) and resumed;
a half-written ``history.json`` or ``best.keras`` would then be read back as if it were
whole. Every writer therefore writes a temporary file beside the target and renames it
over the target (a rename within one folder is atomic), through :func:`atomic_path`.
"""

import contextlib
import csv
import errno
import json
import math
import re
from pathlib import Path

from coughclf.errors import CoughclfError

# A name that is one folder inside another wherever it is used: no separator, no '..'.
_FOLDER_NAME = re.compile(r"[\w.-]+")
# Room left in a file name's 255 bytes for what is added to it (a timestamp, "-cv-", ".tmp").
_LONGEST_FOLDER_NAME = 200


def folder_name_problem(name):
    """Why ``name`` cannot be one folder's name inside another (a run's inside ``saved_models/``), or None:
    it must be letters, digits, '-', '_' and '.', not only dots, at most 200 bytes."""
    if not isinstance(name, str) or not _FOLDER_NAME.fullmatch(name) or not name.strip("."):
        return "must be one folder name: letters, digits, '-', '_' and '.' (no '/', not '.' or '..')"
    if len(name.encode("utf-8")) > _LONGEST_FOLDER_NAME:
        return f"is longer than the {_LONGEST_FOLDER_NAME} bytes a folder name may take here"
    return None


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` ends the temporary name for writers that pick the format from it
    (``model.save`` wants ``.keras``, ``savefig`` ``.png``); default ``path``'s name + ``.tmp``.
    A folder (a SavedModel) replaces only a missing or empty ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.stem}.tmp{suffix}" if suffix else f"{path.name}.tmp")
    try:
        yield temporary
    except BaseException as error:
        if temporary.is_file():
            temporary.unlink()
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise disk_full_error(path) from error
        raise
    if temporary.is_dir() and path.is_dir():
        path.rmdir()  # only an empty folder: rmdir refuses any other
    temporary.replace(path)


def disk_full_error(path):
    """The error for a write of ``path`` that found the disk full (the previous file, if any, is intact)."""
    return CoughclfError(f"no space left on the device writing {path}; free some space (or write to another "
                         "folder) and run the command again: a run resumes where it stopped")


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path, content):
    """Write ``content`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(content)
    return Path(path)


def write_json(path, data):
    """Write ``data`` as indented JSON atomically (NaN and infinities written as null)."""
    return write_text(path, json.dumps(json_ready(data), indent=2) + "\n")


def write_csv(path, rows, columns=None):
    """Write ``rows`` to ``path`` as CSV atomically.

    Dict rows: the header is ``columns`` (keys outside it are left out, missing ones written
    empty), default every key in order of first appearance.
    List rows: ``columns`` (if given) is the header line.
    """
    rows = list(rows)
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        if rows and isinstance(rows[0], dict):
            writer = csv.DictWriter(handle, list(columns or dict.fromkeys(key for row in rows for key in row)),
                                    restval="", extrasaction="ignore")
            writer.writeheader()
        else:
            writer = csv.writer(handle)
            if columns:
                writer.writerow(columns)
        writer.writerows(rows)
    return Path(path)


def json_ready(value):
    """``value`` with every NaN and infinity replaced by None (JSON null), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))
