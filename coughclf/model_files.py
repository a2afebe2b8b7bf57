"""Model files a user can carry: written without training state, read with errors that say what is wrong.

:func:`save_model_file` writes the model alone, atomically: architecture and weights, not
the optimizer state (a run keeps that for resuming in a file of its own,
:mod:`coughclf.resume_state`).

:func:`load_model_file` reads one that may be damaged or untrusted. Keras reports a
truncated or corrupt ``.keras`` file as "File not found" and a refused ``Lambda`` layer
as a ``ValueError`` about deserialisation; both are failures a user can act on once told
the file and the fix, so they become :class:`coughclf.errors.CoughclfError`. Models
always load in safe mode: a ``Lambda`` layer (Python code inside the file) is refused,
never run.
"""

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
    except ValueError as error:
        if "Lambda" in str(error) or "safe_mode" in str(error):
            raise CoughclfError(f"{path} holds a Lambda layer, whose Python code would run on loading; it is "
                                "refused, since a model file can come from anyone. Use a model built from "
                                "coughclf's (or other registered, serialisable) layers") from None
        raise CoughclfError(f"{path} is corrupt: {error}; {remedy}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise CoughclfError(f"{path} is corrupt ({type(error).__name__}: {error}); {remedy}") from None
