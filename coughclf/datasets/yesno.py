"""Kaldi's yesno corpus: ``waves_yesno/{b1}_{b2}_..._{b8}.wav``, 1 = "yes", 0 = "no"."""

import re

from coughclf.datasets.base import Archive, Clip, register_dataset
from coughclf.datasets.layout import file_names, find_root, loader, require_clips

LAYOUT = "waves_yesno/{b1}_..._{b8}.wav with each b 0 (no) or 1 (yes)"
_NAME = re.compile(r"^[01](?:_[01])+\.wav$")
_WORDS = {"0": "no", "1": "yes"}


@register_dataset(
    name="yesno",
    task="ctc",
    description="Kaldi yesno: one speaker says eight Hebrew words, each 'yes' or 'no', 8 kHz. "
                "Transcript from the file name; split: files sorted by name, first half train, second half test.",
    citation="Kaldi yesno corpus, OpenSLR resource 1, http://www.openslr.org/1/.",
    licence="Apache 2.0 (Kaldi)",
    homepage="http://www.openslr.org/1/",
    archives=(Archive(url="https://www.openslr.org/resources/1/waves_yesno.tar.gz",
                      # torchaudio.datasets.yesno's published checksum.
                      sha256="c3f49e0cca421f96b75b41640749167b52118f232498667ca7a5f9416aef8e73"),),
)
@loader
def list_yesno(data_dir):
    root = find_root(data_dir, "waves_yesno", LAYOUT, dataset="yesno", missing_ok=True)
    folder = root / "waves_yesno" if root else data_dir  # or the waves_yesno folder itself
    names = require_clips([name for name in file_names(folder, (".wav",)) if _NAME.match(name)],
                          data_dir, LAYOUT, dataset="yesno")
    # The corpus has no official split; a fixed half/half by sorted name keeps runs comparable.
    half = len(names) // 2
    return [Clip(id=name[:-4],
                 path=folder / name,
                 group="yesno",
                 split="train" if position < half else "test",
                 transcript=" ".join(_WORDS[bit] for bit in name[:-4].split("_")))
            for position, name in enumerate(names)]
