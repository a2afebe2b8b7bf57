"""LibriSpeech: ``{subset}/{speaker}/{chapter}/{speaker}-{chapter}-{utt}.flac`` + ``{speaker}-{chapter}.trans.txt``.

Every transcript line is listed, its audio present or not (``.flac``, or a ``.wav`` conversion):
``prepare`` reports the missing ones in ``skipped.csv``.
"""

from coughclf.datasets.base import Clip, register_dataset
from coughclf.datasets.layout import file_names, loader, require_clips, subfolders
from coughclf.errors import CoughclfError

LAYOUT = ("{subset}/{speaker}/{chapter}/{speaker}-{chapter}-{utt}.flac with {speaker}-{chapter}.trans.txt "
          "(data folder: the LibriSpeech root or one subset folder such as dev-clean)")
_SPLIT_OF_SUBSET = {"train": "train", "dev": "validation", "test": "test"}


@register_dataset(
    name="librispeech",
    task="ctc",
    description="LibriSpeech: read English audiobooks, 16 kHz FLAC with transcripts. Split from the subset "
                "folder (train-* train, dev-* validation, test-* test); group = speaker.",
    citation="V. Panayotov, G. Chen, D. Povey and S. Khudanpur, Librispeech: an ASR corpus based on public "
             "domain audio books, ICASSP 2015.",
    licence="CC BY 4.0",
    homepage="https://www.openslr.org/12/",
)
@loader
def list_librispeech(data_dir):
    if (data_dir / "LibriSpeech").is_dir():
        data_dir = data_dir / "LibriSpeech"
    children = subfolders(data_dir)
    if children and all(child.name.isdigit() for child in children):
        subsets = [data_dir]
    else:
        subsets = [child for child in children if not child.name.isdigit()]
    clips = []
    for subset in subsets:
        split = _SPLIT_OF_SUBSET.get(subset.name.split("-")[0])
        for speaker in subfolders(subset):
            for chapter in subfolders(speaker):
                clips.extend(_chapter_clips(chapter, subset.name, split))
    return require_clips(clips, data_dir, LAYOUT, dataset="librispeech")


def _chapter_clips(chapter, subset, split):
    speaker = chapter.parent.name
    transcripts = chapter / f"{speaker}-{chapter.name}.trans.txt"
    if not transcripts.exists():
        raise CoughclfError(f"{transcripts} not found: 'librispeech' expects {LAYOUT}")
    present = set(file_names(chapter, (".flac", ".wav")))
    clips = []
    for line in transcripts.read_text(encoding="utf-8").splitlines():
        utterance, _, text = line.strip().partition(" ")
        if not utterance:
            continue
        audio = next((name for name in (f"{utterance}.flac", f"{utterance}.wav") if name in present),
                     f"{utterance}.flac")
        clips.append(Clip(id=utterance, path=chapter / audio, group=speaker, split=split, transcript=text.strip(),
                          metadata={"speaker": speaker, "chapter": chapter.name, "subset": subset}))
    return clips
