"""Model files a user can carry: written without training state, read with errors that say what is wrong.

:func:`save_model_file` writes the model alone, atomically: architecture and weights, not
the optimizer state (a run keeps that for resuming in a file of its own,
:mod:`coughclf.resume_state`).

:func:`load_model_file` reads one that may be damaged or untrusted. Models always load in
Keras' safe mode, and every file that does not load is a one-line
:class:`coughclf.errors.CoughclfError` naming the file and the reason, never Keras' nested
dump. Keras reports a truncated or corrupt ``.keras`` file as "File not found", and a config
that safe mode refuses (a ``Lambda`` layer, a Python lambda, a reference to ``os.system`` or to
``keras.config.enable_unsafe_deserialization``) as a ``TypeError`` wrapping, layer by layer,
the ``ValueError`` that says why: :func:`load_model_file` finds that innermost reason and says
whether the file is refused (it asks for code to run) or damaged (anything else).
"""

import re
import zipfile
from pathlib import Path

from coughclf.compat import without_training_state
from coughclf.errors import CoughclfError
from coughclf.files import atomic_path


def save_model_file(model, path):
    """Write ``model`` to the ``.keras`` file ``path`` atomically: its architecture and weights, not its
    optimizer state or compile settings (it loads with :func:`load_model_file` as an uncompiled model)."""
    with atomic_path(path, suffix=".keras") as temporary, without_training_state(model):
        model.save(temporary)
    return Path(path)

# Keras' words for a config that would run code or reach beyond modelling (safe mode's refusals).
_UNSAFE = re.compile(r"lambda|safe_mode|Could not locate (?:class|function)|not a modeling function|"
                     r"not a KerasSaveable|disallowed", re.IGNORECASE)
# Where Keras' message stops saying why and starts advising or dumping the config.
_ADVICE = re.compile(r"\. (?:Make sure|If you trust|Please ensure|Full object config|Model configuration)|\n")
# Keras' "Full object config: {'module': 'os', 'class_name': 'system', ...}": what the file asked for.
_REFERENCE = re.compile(r"'module': '([^']*)', 'class_name': '([^']*)'(?:, 'config': '([^']*)')?")


def load_model_file(path, *, remedy="copy the file again from where it was made, or train it again"):
    """The Keras model in ``path`` (safe mode, not compiled); ``remedy`` ends the error on a damaged file."""
    import keras

    from coughclf import models

    path = Path(path)
    if not path.is_file():
        raise CoughclfError(f"{path}: no such model file; {remedy}")
    if not zipfile.is_zipfile(path):
        raise CoughclfError(f"{path} is corrupt or truncated ({path.stat().st_size} bytes, not a complete .keras "
                            f"zip archive); {remedy}")
    models.available()  # registers every coughclf layer, so that the file's layers can be found
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise CoughclfError(f"{path} is corrupt ({type(error).__name__}: {error}); {remedy}") from None
    except Exception as error:  # Keras wraps the reason in TypeErrors, ValueErrors, JSON errors...
        raise _refusal(path, error, remedy) from None


def _refusal(path, error, remedy):
    """The one-line error for a ``.keras`` file that Keras did not load because of ``error``."""
    innermost = _innermost(error)
    if "`Lambda` layer" in innermost:
        return CoughclfError(f"{path} holds a Lambda layer, whose Python code would run on loading; it is refused, "
                             "since a model file can come from anyone. Use a model built from coughclf's (or other "
                             "registered, serialisable) layers")
    reason = _ADVICE.split(innermost, maxsplit=1)[0].strip().rstrip(".") or type(error).__name__
    if not _UNSAFE.search(reason):
        return CoughclfError(f"{path} is corrupt ({reason}); {remedy}")
    reference = _REFERENCE.search(innermost)
    if reference:
        module, class_name, function = reference.groups()
        reason = f"it asks for {module}.{function or class_name}, which is no registered Keras or coughclf layer " \
                 "or function"
    return CoughclfError(f"{path} is refused: {reason}. Only registered, serialisable layers and functions are "
                         "loaded (safe mode), since a model file can come from anyone; use a model saved by coughclf")


def _innermost(error):
    """The message that says why: that of the first exception in ``error``'s chain, or the text after
    Keras' last "Exception encountered:" (Keras repeats the inner message inside each wrapper)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error)
    return text.rpartition("Exception encountered:")[2].strip() or type(error).__name__
