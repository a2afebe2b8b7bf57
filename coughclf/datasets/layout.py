"""Helpers shared by the dataset loaders: locating a layout, typed options, reading tables.

Loaders never decode audio, so everything here works on names and small text files only.
"""

import csv
import functools
import inspect
import os
from pathlib import Path

from coughclf.audio import AUDIO_SUFFIXES
from coughclf.errors import CoughclfError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def loader(list_clips):
    """Decorator for a ``list_clips(data_dir, *, option=default, ...)`` function.

    Resolves ``data_dir`` (it must exist), rejects options the loader does not take with a
    clear error, and converts string option values (as they come from the command line) to
    the type of the option's default. Returns the clips as a list so that layout errors
    surface at once rather than half-way through a prepare run.
    """
    parameters = {name: parameter.default
                  for name, parameter in inspect.signature(list_clips).parameters.items()
                  if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    dataset = list_clips.__name__.removeprefix("list_")

    @functools.wraps(list_clips)
    def checked(data_dir, **options):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            valid = ", ".join(parameters) or "none"
            raise CoughclfError(f"dataset option(s) {', '.join(unknown)} not understood by '{dataset}'; "
                                f"valid options: {valid} (see 'coughclf datasets')")
        typed = {name: _convert(dataset, name, value, parameters[name]) for name, value in options.items()}
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise CoughclfError(f"data folder {root} does not exist; give the folder that holds the "
                                f"'{dataset}' files (see 'coughclf datasets')")
        return list(list_clips(root.resolve(), **typed))

    return checked


def _convert(dataset, name, value, default):
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    text = value.strip().lower()
    try:
        if isinstance(default, bool):
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValueError(value)
        return type(default)(text)
    except ValueError:
        raise CoughclfError(f"option {name}={value!r} for dataset '{dataset}' must be a "
                            f"{type(default).__name__} like {default!r}") from None


def find_root(data_dir, marker, layout, *, dataset, missing_ok=False):
    """The folder holding ``marker`` (a relative path): ``data_dir`` itself or one folder below it.

    Archives usually extract into a top-level folder (``ESC-50-master/``), so the folder the
    user gives may be its parent. The error names the expected file and the documented layout;
    with ``missing_ok`` a missing marker gives None instead.
    """
    if (data_dir / marker).exists():
        return data_dir
    nested = [child for child in subfolders(data_dir) if (child / marker).exists()]
    if len(nested) == 1:
        return nested[0]
    if nested:
        raise CoughclfError(f"{data_dir} holds several '{dataset}' copies ({', '.join(p.name for p in nested)}); "
                            "give one of them as --data-dir")
    if missing_ok:
        return None
    raise CoughclfError(f"{data_dir / marker} not found: '{dataset}' expects {layout}; "
                        "give the folder that holds it as --data-dir")


def subfolders(folder):
    """Visible sub-folders of ``folder``, sorted by name."""
    with os.scandir(folder) as entries:
        return sorted(Path(entry.path) for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def file_names(folder, suffixes=AUDIO_SUFFIXES):
    """Names of the files in ``folder`` (not recursive) whose suffix is in ``suffixes``, sorted."""
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries
                      if not entry.name.startswith(".") and entry.name.lower().endswith(suffixes)
                      and entry.is_file())


def audio_files(folder):
    """Audio files below ``folder`` (recursive, hidden folders skipped), sorted by path."""
    found = []
    for current, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found.extend(Path(current, name) for name in names
                     if not name.startswith(".") and name.lower().endswith(AUDIO_SUFFIXES))
    return sorted(found)


def read_table(path, *, required=(), dataset, **reader_options):
    """Rows of a CSV file as dicts; an error names the file and any missing ``required`` column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, **reader_options)
            rows = list(reader)
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise CoughclfError(f"{path} not found: '{dataset}' needs it (see 'coughclf datasets')") from None
    missing = [column for column in required if column not in columns]
    if missing:
        raise CoughclfError(f"{path} lacks column(s) {', '.join(missing)} that '{dataset}' needs; "
                            f"it has: {', '.join(c for c in columns if c) or 'none'}")
    return rows


def flag_text(value):
    """A JSON true/false/null as the manifest writes it: "true", "false" or ""."""
    return "" if value is None else str(bool(value)).lower()


def require_clips(clips, data_dir, layout, *, dataset):
    """``clips`` unchanged, or an error when the layout was found but held no usable recording."""
    if not clips:
        raise CoughclfError(f"no '{dataset}' recordings found in {data_dir}: expected {layout}")
    return clips


def require_folder(folder, layout, *, dataset):
    """``folder``, or an error naming it and the documented layout when it is missing."""
    if not folder.is_dir():
        raise CoughclfError(f"{folder} not found: '{dataset}' expects {layout}")
    return folder
