"""Google Speech Commands (v0.01 and v0.02): ``{word}/{speaker}_nohash_{n}.wav`` + official lists."""

from pathlib import Path

from coughclf.datasets.base import Archive, Clip, register_dataset
from coughclf.datasets.layout import file_names, loader, require_clips, subfolders
from coughclf.errors import CoughclfError

LAYOUT = ("{word}/{speaker}_nohash_{n}.wav with validation_list.txt and testing_list.txt beside the "
          "word folders (the parent of speech_commands_v0.0x/ is accepted too)")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BACKGROUND_NOISE = "_background_noise_"
_LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}


@register_dataset(
    name="speech_commands",
    task="classification",
    description="Google Speech Commands: one-second keywords by thousands of speakers, 16 kHz. "
                "Label = word, group = speaker, official validation/testing lists, _background_noise_ "
                "exposed as a noise bank (not a class).",
    citation="P. Warden, Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition, "
             "arXiv:1804.03209, 2018.",
    licence="CC BY 4.0",
    homepage="https://www.tensorflow.org/datasets/catalog/speech_commands",
    options={"words": "comma-separated words to keep, or 'digits' for zero..nine (default: every word)"},
    archives=(Archive(url="https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
                      # torchaudio.datasets.speechcommands' published checksum.
                      sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),),
)
@loader
def list_speech_commands(data_dir, *, words=""):
    root = speech_commands_root(data_dir)
    available = {folder.name: folder for folder in subfolders(root) if not folder.name.startswith("_")}
    chosen = _chosen_words(words, available, root)
    split_of = {}
    for split, list_name in _LISTS.items():
        listing = root / list_name
        if listing.exists():
            # The official lists name every file of the full release; absent ones are ignored.
            split_of.update((line.strip(), split) for line in listing.read_text().splitlines() if line.strip())
    clips = []
    for word in chosen:
        for name in file_names(available[word], (".wav",)):
            relative = f"{word}/{name}"
            clips.append(Clip(id=relative[:-4], path=available[word] / name, label=word,
                              group=name.split("_nohash_")[0], split=split_of.get(relative, "train")))
    return require_clips(clips, root, LAYOUT, dataset="speech_commands")


def speech_commands_root(data_dir):
    """The folder holding the word folders and lists: ``data_dir`` or its one release sub-folder."""
    data_dir = Path(data_dir)
    if any((data_dir / name).exists() for name in _LISTS.values()):
        return data_dir
    releases = [child for child in subfolders(data_dir)
                if any((child / name).exists() for name in _LISTS.values())]
    if len(releases) == 1:
        return releases[0]
    raise CoughclfError(f"{data_dir / _LISTS['test']} not found: 'speech_commands' expects {LAYOUT}")


def background_noise_files(data_dir):
    """The ``_background_noise_/*.wav`` recordings of a Speech Commands folder (empty if it has none)."""
    folder = speech_commands_root(data_dir) / BACKGROUND_NOISE
    return [folder / name for name in file_names(folder, (".wav",))] if folder.is_dir() else []


def _chosen_words(words, available, root):
    if not words:
        return sorted(available)
    chosen = list(DIGITS) if words.strip().lower() == "digits" else [w.strip() for w in words.split(",") if w.strip()]
    missing = [word for word in chosen if word not in available]
    if missing:
        raise CoughclfError(f"word folder(s) {', '.join(missing)} not found in {root}; "
                            f"available: {', '.join(sorted(available))}")
    return sorted(chosen)
