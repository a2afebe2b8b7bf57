"""Weights saved by Keras 2's ``model.save_weights("x.h5")`` (HDF5), read without Keras 2.

The layout (``tf.keras`` ``hdf5_format.save_weights_to_hdf5_group``): the root's attribute
``layer_names`` lists the layers; each has a group of that name (a name with ``/`` is a path of
nested groups) whose attribute ``weight_names`` lists its weights, each a dataset at that
name inside the group, e.g. ``f["layer1/conv"]["layer1/conv/kernel:0"]``. An attribute over
HDF5's 64 KB limit is split into ``layer_names0``, ``layer_names1`` … . Layers without weights
have an empty list.
"""

from pathlib import Path

import numpy as np

from coughclf.errors import CoughclfError


def _names(group, attribute):
    """A string-list attribute, joined back from its ``attribute0``, ``attribute1`` … chunks if split."""
    if attribute in group.attrs:
        values = list(group.attrs[attribute])
    else:
        values, chunk = [], 0
        while f"{attribute}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{attribute}{chunk}"])
            chunk += 1
    return [value.decode("utf8") if isinstance(value, bytes) else str(value) for value in values]


def read_keras2_h5(path):
    """``{weight name: float32 array}`` of a Keras 2 weights file, e.g. ``"layer1/conv/kernel:0"``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise CoughclfError(f"{path} does not exist; give the path of a Keras .h5 weights file")
    try:
        with h5py.File(path, "r") as file:
            root = file["model_weights"] if "model_weights" in file else file  # a whole saved model holds them there
            layer_names = _names(root, "layer_names")
            if not layer_names:
                raise CoughclfError(f"{path} is an HDF5 file but not Keras weights (no layer_names attribute); "
                                    "give the file written by model.save_weights or model.save")
            weights = {}
            for layer in layer_names:
                group = root[layer]
                for name in _names(group, "weight_names"):
                    weights[name] = np.asarray(group[name], dtype=np.float32)
    except (OSError, KeyError) as error:
        raise CoughclfError(f"{path} is not a readable Keras HDF5 weights file ({error}); download it again") from None
    return weights
