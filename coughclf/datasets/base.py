"""The one dataset interface: a loader lists :class:`Clip` records from a data folder.

A loader never decodes audio; :mod:`coughclf.prepare` does that once, into the
prepared-data cache. Loaders are registered with :func:`register_dataset` and
looked up with :func:`coughclf.datasets.get`.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable


@dataclass(frozen=True)
class Clip:
    """One recording as a dataset lists it.

    Attributes:
        id: unique within the dataset, stable across runs (used to resume and to split).
        path: absolute path of the audio file.
        label: class name, or None for unlabelled clips and speech corpora.
        group: who produced it (speaker, patient, source recording): splits never
            put one group on both sides.
        fold: the dataset's predefined fold (ESC-50, UrbanSound8K), if any.
        split: the dataset's official split ("train", "validation", "test"), if any.
        transcript: the spoken text, for speech corpora.
        metadata: extra columns (age, gender, SNR, source, ...), written to the manifest
            as ``meta_<key>``.
    """

    id: str
    path: Path
    label: str | None = None
    group: str = ""
    fold: int | None = None
    split: str | None = None
    transcript: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Archive:
    """A public archive that ``coughclf download`` fetches."""

    url: str
    sha256: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    ``list_clips(data_dir: Path, **options) -> Iterable[Clip]`` raises
    :class:`coughclf.errors.CoughclfError` naming the missing file when the folder
    does not have the documented layout. ``options`` documents the keyword options
    the loader accepts (name -> one-line description) for ``coughclf datasets``.
    """

    name: str
    task: str  # "classification" or "ctc"
    description: str
    citation: str
    licence: str
    homepage: str
    list_clips: Callable[..., Iterable[Clip]]
    options: dict = field(default_factory=dict)
    archives: tuple = ()


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(**spec_fields):
    """Decorator: register the decorated ``list_clips`` function as a dataset."""

    def decorator(list_clips):
        spec = DatasetSpec(list_clips=list_clips, **spec_fields)
        if spec.name in _REGISTRY:
            raise ValueError(f"dataset {spec.name!r} registered twice")
        _REGISTRY[spec.name] = spec
        return list_clips

    return decorator
