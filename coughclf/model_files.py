"""Reading a saved ``.keras`` model that may be damaged or untrusted, with errors that say which and why.

Keras reports a truncated or corrupt ``.keras`` file as "File not found" and a refused
``Lambda`` layer as a ``ValueError`` about deserialisation; both are failures a user can
act on once told the file and the fix, so :func:`load_model_file` turns them into
:class:`coughclf.errors.CoughclfError`. Models always load in safe mode: a ``Lambda``
layer (Python code inside the file) is refused, never run.
"""

import zipfile
from pathlib import Path

from coughclf.errors import CoughclfError


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
