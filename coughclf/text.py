"""Character vocabulary and transcript normalisation for CTC speech recognition (report 5).

The recogniser writes lower-case English letters, the apostrophe and the space.
Index 0 is the CTC *blank*: it is the ``mask_index`` that :func:`keras.ops.ctc_loss`
and :func:`keras.ops.ctc_decode` default to, so the characters take indices
``1 .. len(CHARACTERS)`` and a model's softmax has ``len(CHARACTERS) + 1 = 29`` classes.
Padded label matrices are padded with the blank too: a transcript never contains it,
so a label's length is the count of its non-blank entries.

Transcripts go through :func:`normalize` before encoding: lower case, accents
stripped, typographic apostrophes made plain, numbers written as words ("42" →
"forty two", "1st" → "first", "3.5" → "three point five"), every other punctuation
mark dropped and spaces collapsed.

Example::

    from coughclf.text import decode, encode, normalize
    ids = encode(normalize("It's 42, Sir!"))   # "it's forty two sir" -> [9, 20, 2, 19, 1, ...]
    assert decode(ids) == "it's forty two sir"
"""

import re
import unicodedata

import numpy as np

BLANK = 0
CHARACTERS = " 'abcdefghijklmnopqrstuvwxyz"
NUM_CLASSES = len(CHARACTERS) + 1  # characters + the CTC blank

_CHAR_TO_ID = {char: index + 1 for index, char in enumerate(CHARACTERS)}

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}
DIGIT_WORDS = tuple(_ONES[:10])

# A number: digits with optional thousands commas, an optional decimal part and an
# optional ordinal suffix ("1,000", "3.5", "21st").
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(st|nd|rd|th)?(?!\w)")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NOT_IN_VOCABULARY = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def number_to_words(number):
    """A non-negative integer in English words: ``1905`` → ``"one thousand nine hundred five"``."""
    number = int(number)
    if number < 0:
        raise ValueError(f"number_to_words takes a non-negative integer, not {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    for scale, word in _SCALES:
        if number >= scale:
            leading, rest = divmod(number, scale)
            return f"{number_to_words(leading)} {word}" + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable: every number >= 1000 has a scale")


def _ordinal(words):
    *head, last = words.split(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _spell_number(match):
    integer, decimals, suffix = match.groups()
    words = number_to_words(integer.replace(",", ""))
    if decimals:
        words += " point " + " ".join(_ONES[int(digit)] for digit in decimals[1:])
    elif suffix:
        words = _ordinal(words)
    return f" {words} "


def normalize(text, numbers_as_words=True):
    """``text`` reduced to the vocabulary: lower case, no accents or punctuation, numbers spelled.

    Args:
        text: any transcript.
        numbers_as_words: spell numbers out (``"42"`` → ``"forty two"``); when False
            digits are dropped like other symbols outside the vocabulary (for corpora
            whose transcripts are already normalised, spelling is a no-op anyway).

    Returns:
        A string of :data:`CHARACTERS` with single spaces and no leading/trailing space.
    """
    text = unicodedata.normalize("NFKD", text).translate(_APOSTROPHES)
    text = "".join(char for char in text if not unicodedata.combining(char)).lower()
    if numbers_as_words:
        text = _NUMBER.sub(_spell_number, text)
    # Hyphens and slashes separate words ("twenty-one", "and/or"); other marks just vanish.
    text = re.sub(r"[-/\u2013\u2014]", " ", text)
    text = _NOT_IN_VOCABULARY.sub(lambda match: " " if any(c.isspace() for c in match.group()) else "",
                                  text)
    # Quotes made of apostrophes ('like this') are punctuation, not contractions.
    text = re.sub(r"(^|\s)'+|'+(\s|$)", r"\1\2", text)
    return _SPACES.sub(" ", text).strip()


def encode(text):
    """Character ids (int32 array, no blanks) of an already normalised ``text``.

    Raises:
        ValueError: ``text`` holds a character outside :data:`CHARACTERS`; run
            :func:`normalize` first.
    """
    try:
        return np.array([_CHAR_TO_ID[char] for char in text], dtype=np.int32)
    except KeyError as error:
        raise ValueError(f"character {error.args[0]!r} of {text!r} is not in the vocabulary; "
                         "normalize() the transcript first") from None


def decode(ids):
    """Text of character ids; blanks (0) and negative padding are skipped."""
    return "".join(CHARACTERS[index - 1] for index in np.asarray(ids).ravel().tolist() if index > 0)


def encode_batch(texts):
    """Padded int32 label matrix ``[len(texts), longest]`` (padding = blank) and lengths ``[len(texts)]``."""
    encoded = [encode(text) for text in texts]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int32)
    labels = np.full((len(encoded), max(lengths, default=0)), BLANK, dtype=np.int32)
    for row, ids in enumerate(encoded):
        labels[row, :len(ids)] = ids
    return labels, lengths
