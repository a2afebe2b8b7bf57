"""Vocabulary and normalisation of CTC transcripts (coughclf.text)."""

import numpy as np
import pytest

from coughclf import text


def test_blank_is_index_zero_and_characters_follow():
    # keras.ops.ctc_loss / ctc_decode default to mask_index=0: the blank must be 0.
    assert text.BLANK == 0
    assert text.NUM_CLASSES == len(text.CHARACTERS) + 1 == 29
    ids = text.encode(text.CHARACTERS)
    assert ids.tolist() == list(range(1, text.NUM_CLASSES))


def test_encode_decode_round_trip_of_every_character():
    sample = "the cat's whiskers quivered jumping zebra box"
    assert text.decode(text.encode(sample)) == sample
    assert text.decode(text.encode(text.CHARACTERS)) == text.CHARACTERS


def test_decode_skips_blank_and_negative_padding():
    h, i = text.encode("hi")
    assert text.decode(np.array([0, h, 0, i, -1, -1])) == "hi"


def test_encode_rejects_characters_outside_the_vocabulary():
    with pytest.raises(ValueError, match="normalize"):
        text.encode("room 101")
    with pytest.raises(ValueError, match="normalize"):
        text.encode("Capital")


def test_encode_batch_pads_with_blank_and_reports_lengths():
    labels, lengths = text.encode_batch(["ab", "c", ""])
    assert lengths.tolist() == [2, 1, 0]
    assert labels.tolist() == [[3, 4], [5, text.BLANK], [text.BLANK, text.BLANK]]


@pytest.mark.parametrize("number, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty two"), (100, "one hundred"),
    (101, "one hundred one"), (1905, "one thousand nine hundred five"),
    (2_000_021, "two million twenty one"), (1_000_000_000, "one billion"),
])
def test_number_to_words(number, words):
    assert text.number_to_words(number) == words


@pytest.mark.parametrize("raw, normalized", [
    ("It's 42, Sir!", "it's forty two sir"),
    ("He paid 3.5 dollars", "he paid three point five dollars"),
    ("the 21st, 2nd and 12th", "the twenty first second and twelfth"),
    ("1,000 ways", "one thousand ways"),
    ("Café naïve", "cafe naive"),
    ("twenty-one\tyears", "twenty one years"),
    ("'Quoted' words", "quoted words"),
    ("don\u2019t stop", "don't stop"),
    ('He said "No. 1" to Mr. Smith', "he said no one to mr smith"),
    ("  spaced   out  ", "spaced out"),
])
def test_normalize(raw, normalized):
    assert text.normalize(raw) == normalized
    text.encode(text.normalize(raw))  # always encodable


def test_normalize_can_drop_numbers_instead_of_spelling_them():
    assert text.normalize("Room 101 is cold", numbers_as_words=False) == "room is cold"


def test_normalize_is_idempotent():
    once = text.normalize("In 1905, Einstein's \u201cannus mirabilis\u201d began!")
    assert once == "in one thousand nine hundred five einstein's annus mirabilis began"
    assert text.normalize(once) == once
