"""The 521 AudioSet class names of YAMNet's outputs, in output order.

``yamnet_class_map.csv`` (``index,mid,display_name``) ships with the package as it is published
beside the model in tensorflow/models, research/audioset/yamnet (Apache 2.0; the AudioSet
ontology's names are CC BY 4.0, research.google.com/audioset).
"""

import csv
import functools
from importlib import resources

CLASS_MAP = "yamnet_class_map.csv"


@functools.cache
def audioset_class_names():
    """The display names, index ``i`` for YAMNet output ``i``.

    >>> names = audioset_class_names()
    >>> len(names), names[0], names[42]
    (521, 'Speech', 'Cough')
    """
    text = resources.files(__package__).joinpath(CLASS_MAP).read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return tuple(row["display_name"] for row in sorted(rows, key=lambda row: int(row["index"])))
