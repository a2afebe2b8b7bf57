"""Extra training views of every clip for a head on cached embeddings: ``[augment] embedding_views``.

Settings only (numpy, no Keras): :mod:`coughclf.config` checks them and :mod:`coughclf.mixing`
leaves the key out of the augmentation layers without importing the training code of
:mod:`coughclf.pretrained.embedding_head`, which embeds and caches each view.
"""

from dataclasses import dataclass

import numpy as np

from coughclf.errors import CoughclfError

# The [augment] key of the EmbeddingView list (not an augmentation layer: coughclf.mixing leaves it out of those).
VIEWS_KEY = "embedding_views"
VIEW_EXAMPLE = "[{ shift_seconds = 0.24 }, { gain_db = -12.0 }]"


@dataclass(frozen=True)
class EmbeddingView:
    """An extra training view of every clip for a head on cached embeddings: the clip as evaluation
    cuts it, delayed by ``shift_seconds`` (advanced when negative; zeros shifted in) and scaled by
    ``gain_db``. The same for every clip, so each view is embedded once for the whole cache.

    A shift that is not a multiple of the backbone's patch hop (YAMNet: 0.48 s) shows it patches
    it never saw; a gain moves the quiet parts against its log offset (log(mel + 0.001)).
    """

    shift_seconds: float = 0.0
    gain_db: float = 0.0

    def __post_init__(self):
        for name in ("shift_seconds", "gain_db"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise CoughclfError(f"{name} must be a number, got {value!r}")
        if self.shift_seconds == 0 and self.gain_db == 0:
            raise CoughclfError("a view with shift_seconds = 0 and gain_db = 0 is the clip itself; drop it")

    def view(self, audio, sample_rate):
        """This view of the ``[clips, samples]`` batch ``audio``."""
        shift = int(round(self.shift_seconds * sample_rate))
        if abs(shift) >= audio.shape[1]:
            raise CoughclfError(f"shift_seconds = {self.shift_seconds} shifts the whole clip out")
        views = np.roll(audio, shift, axis=1) * np.float32(10.0 ** (self.gain_db / 20.0))
        if shift > 0:
            views[:, :shift] = 0.0
        elif shift < 0:
            views[:, shift:] = 0.0
        return views


def embedding_views(config):
    """The :class:`EmbeddingView` tuple of ``config``'s ``[augment] embedding_views`` (empty when unset);
    a bad entry is an error naming it."""
    entries = config["augment"].get(VIEWS_KEY, [])
    where = f"{config.source}: augment.{VIEWS_KEY}"
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise CoughclfError(f"{where} must be a list of tables such as {VIEW_EXAMPLE}, got {entries!r}")
    if entries and config["model"]["freeze"] != "backbone":
        raise CoughclfError(f"{where} are views of cached embeddings, which need model.freeze = 'backbone'; "
                            "fine-tuning sees the waveform: use augmentation layers (e.g. time_shift) instead")
    views = []
    for number, entry in enumerate(entries):
        unknown = sorted(set(entry) - {"shift_seconds", "gain_db"})
        if unknown:
            raise CoughclfError(f"{where}[{number}]: unknown key {unknown[0]!r}; valid keys: shift_seconds, gain_db")
        try:
            views.append(EmbeddingView(**entry))
        except CoughclfError as error:
            raise CoughclfError(f"{where}[{number}]: {error}") from None
    if len(set(views)) < len(views):
        raise CoughclfError(f"{where} lists a view twice; drop the copy")
    return tuple(views)
