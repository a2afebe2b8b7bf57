"""CTC loss on padded batches, greedy/beam decoding (Keras and NumPy), edit distance, CER/WER."""

import itertools

import numpy as np
import pytest

from coughclf import ctc
from coughclf.text import BLANK, encode


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _collapse(path):
    merged = [token for index, token in enumerate(path) if index == 0 or token != path[index - 1]]
    return [token for token in merged if token != BLANK]


def _brute_force_nll(log_probs, label):
    """−log Σ over every frame path that collapses to ``label`` (tiny inputs only)."""
    frames, classes = log_probs.shape
    total = 0.0
    for path in itertools.product(range(classes), repeat=frames):
        if _collapse(list(path)) == list(label):
            total += np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
    return -np.log(total)


def test_ctc_loss_equals_brute_force_sum_over_alignments():
    rng = np.random.default_rng(0)
    log_probs = _log_softmax(rng.standard_normal((1, 4, 3))).astype("float32")
    for label in ([1], [1, 2], [2, 2]):
        loss = ctc.ctc_loss(np.array([label]), log_probs, np.array([4]))
        assert float(np.asarray(loss)[0]) == pytest.approx(_brute_force_nll(log_probs[0], label), rel=1e-4)


def test_loss_of_a_padded_batch_equals_each_example_alone():
    rng = np.random.default_rng(1)
    logit_lengths = np.array([12, 7, 9], "int32")
    labels = [[3, 4, 4, 5], [7], [2, 9, 2]]
    log_probs = _log_softmax(rng.standard_normal((3, 12, 29))).astype("float32")
    # Padded frames hold garbage that a correct loss ignores.
    for row, length in enumerate(logit_lengths):
        log_probs[row, length:] = 5.0
    padded = np.zeros((3, 4), "int32")
    for row, label in enumerate(labels):
        padded[row, :len(label)] = label
    batch_loss = np.asarray(ctc.ctc_loss(padded, log_probs, logit_lengths))
    for row, (label, length) in enumerate(zip(labels, logit_lengths)):
        alone = ctc.ctc_loss(np.array([label]), log_probs[row:row + 1, :length], np.array([length]))
        assert batch_loss[row] == pytest.approx(float(np.asarray(alone)[0]), rel=1e-5)


def test_label_lengths_count_non_blank_entries():
    assert np.asarray(ctc.label_lengths(np.array([[3, 4, 0], [0, 0, 0], [1, 2, 3]]))).tolist() == [2, 0, 3]


def _path_log_probs(path, classes=29, confidence=5.0):
    logits = np.zeros((len(path), classes), "float32")
    logits[np.arange(len(path)), path] = confidence
    return _log_softmax(logits)


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    a, b = encode("ab")
    path = [a, a, BLANK, a, b, b, BLANK]
    log_probs = _path_log_probs(path)[None]
    assert ctc.decode_batch(log_probs, np.array([7])) == ["aab"]
    assert ctc.greedy_decode_numpy(log_probs[0]) == "aab"
    # Frames past the example's length are not decoded.
    assert ctc.decode_batch(log_probs, np.array([3])) == ["a"]
    assert ctc.greedy_decode_numpy(log_probs[0], 3) == "a"


def test_beam_search_sums_alignments_where_greedy_takes_the_best_path():
    # Two frames, P(blank) = 0.6, P(a) = 0.4: the best path is blank-blank (""), but
    # "a" has probability 0.4·0.4 + 2·0.4·0.6 = 0.64 > 0.36.
    (a,) = encode("a")
    probs = np.full((1, 2, 29), 1e-6, "float32")
    probs[..., BLANK], probs[..., a] = 0.6, 0.4
    log_probs = np.log(probs / probs.sum(-1, keepdims=True))
    lengths = np.array([2])
    assert ctc.decode_batch(log_probs, lengths, "greedy") == [""]
    assert ctc.decode_batch(log_probs, lengths, "beam_search", beam_width=8) == ["a"]


def test_numpy_greedy_decoder_matches_keras_on_random_batches():
    rng = np.random.default_rng(2)
    log_probs = _log_softmax(rng.standard_normal((6, 40, 29)) * 3).astype("float32")
    lengths = np.array([40, 33, 20, 5, 1, 38])
    keras_texts = ctc.decode_batch(log_probs, lengths, "greedy")
    numpy_texts = [ctc.greedy_decode_numpy(log_probs[i], lengths[i]) for i in range(6)]
    assert keras_texts == numpy_texts
    assert any(len(t) > 5 for t in keras_texts)


def _word_sequences(lexicon, max_characters):
    """Every text of lexicon words (single spaces) of at most ``max_characters`` characters."""
    texts, frontier = [], list(lexicon)
    while frontier:
        texts += frontier
        frontier = [f"{text} {word}" for text in frontier for word in lexicon
                    if len(text) + 1 + len(word) <= max_characters]
    return texts


def test_lexicon_decoder_finds_the_most_probable_word_sequence_by_brute_force():
    lexicon = ["ab", "b", "ba"]
    rng = np.random.default_rng(3)
    for trial in range(6):
        # Random frames that favour the few characters in play, so every candidate has real mass.
        logits = rng.standard_normal((6, 29)) * 2
        logits[:, [BLANK, *encode("ab ")]] += 3
        log_probs = _log_softmax(logits).astype("float32")
        candidates = [text for text in _word_sequences(lexicon, 6)]
        losses = [float(np.asarray(ctc.ctc_loss(np.array([encode(text)]), log_probs[None], np.array([6])))[0])
                  for text in candidates]
        best = candidates[int(np.argmin(losses))]
        assert ctc.lexicon_decode_numpy(log_probs, lexicon, beam_width=500) == best, trial


def test_lexicon_decoder_reads_run_together_words_as_lexicon_words():
    # The greedy path spells "noes": a character model that merged "no yes".
    path = [*encode("no"), BLANK, BLANK, *encode("es")]
    probs = 0.5 * np.exp(_path_log_probs(path, confidence=6.0)) + 0.5 / 29
    # Some mass for the space and the "y" where the words meet.
    probs[2, encode(" ")[0]] = probs[3, encode("y")[0]] = 0.05
    log_probs = np.log(probs / probs.sum(-1, keepdims=True))
    assert ctc.greedy_decode_numpy(log_probs) == "noes"
    assert ctc.lexicon_decode_numpy(log_probs, ["yes", "no"]) == "no yes"
    assert ctc.decode_batch(log_probs[None], np.array([len(path)]), "lexicon", lexicon=["yes", "no"]) == ["no yes"]
    assert ctc.lexicon_decode_numpy(log_probs, ["yes", "no"], length=2) == "no"


def test_lexicon_decoder_refuses_a_bad_lexicon():
    with pytest.raises(ValueError, match="lexicon"):
        ctc.decode_batch(np.zeros((1, 2, 29), "float32"), np.array([2]), "lexicon")
    with pytest.raises(ValueError, match="no spaces"):
        ctc.lexicon_decode_numpy(np.zeros((2, 29)), ["two words"])


def test_unknown_decoder_is_an_error():
    with pytest.raises(ValueError, match="beam_search"):
        ctc.decode_ids(np.zeros((1, 2, 29), "float32"), np.array([2]), strategy="viterbi")


def _reference_distance(a, b):
    table = np.zeros((len(a) + 1, len(b) + 1), int)
    table[:, 0], table[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i, j] = min(table[i - 1, j] + 1, table[i, j - 1] + 1, table[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return table[-1, -1]


def test_edit_distance_known_values_and_random_strings():
    assert ctc.edit_distance("kitten", "sitting") == 3
    assert ctc.edit_distance("", "abc") == 3
    assert ctc.edit_distance("abc", "") == 3
    assert ctc.edit_distance("same", "same") == 0
    assert ctc.edit_distance("one two three".split(), "one three".split()) == 1
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = "".join(rng.choice(list("abc "), size=rng.integers(0, 12)))
        b = "".join(rng.choice(list("abc "), size=rng.integers(0, 12)))
        assert ctc.edit_distance(a, b) == _reference_distance(a, b)


def test_character_and_word_error_rates_are_corpus_level():
    references = ["yes no", "no no yes"]
    hypotheses = ["yes no", "no yes"]
    # second pair: 3 characters deleted ("no "), one word deleted.
    assert ctc.character_error_rate(references, hypotheses) == pytest.approx(3 / 15)
    assert ctc.word_error_rate(references, hypotheses) == pytest.approx(1 / 5)
    rate, edits, total = ctc.error_rate(references, references, "word")
    assert (rate, edits, total) == (0.0, 0, 5)
    with pytest.raises(ValueError):
        ctc.error_rate(["a"], [], "char")
