"""CTC for padded batches: the loss, greedy, beam-search and lexicon decoding, and CER / WER.

A CTC model here is a :class:`CTCModel`: a functional Keras model whose outputs are
``{"log_probs": [batch, frames, classes], "logit_length": [batch]}`` (per-frame
log-probabilities, blank at index :data:`coughclf.text.BLANK` = 0, and each example's
valid frame count), trained on label matrices padded with the blank. Its loss is
:func:`ctc_loss` with both the label and the logit lengths, so a padded batch has
exactly the loss of its examples computed one by one.

Example::

    from coughclf.ctc import character_error_rate, decode_batch
    texts = decode_batch(outputs["log_probs"], outputs["logit_length"], strategy="beam_search")
    cer = character_error_rate(references, texts)
"""

import math
from collections import defaultdict

import keras
import numpy as np
from keras import ops

from coughclf.config import CTC_DECODERS as DECODERS
from coughclf.text import BLANK, CHARACTERS, decode, encode

_KERAS_DECODERS = ("greedy", "beam_search")


def label_lengths(labels):
    """Lengths of blank-padded label rows ``[batch, max_label]``: the count of non-blank ids."""
    return ops.sum(ops.cast(ops.not_equal(labels, BLANK), "int32"), axis=-1)


def ctc_loss(labels, log_probs, logit_lengths, label_length=None):
    """Per-example CTC negative log-likelihood ``[batch]`` through ``keras.ops.ctc_loss``.

    Args:
        labels: int ``[batch, max_label]``, padded with the blank (0).
        log_probs: ``[batch, frames, classes]`` log-probabilities (or logits: the
            backends log-softmax them, which leaves log-probabilities unchanged).
        logit_lengths: ``[batch]`` valid frames of each example.
        label_length: ``[batch]`` label lengths; default: the non-blank count of each row.
    """
    labels = ops.cast(labels, "int32")
    lengths = label_lengths(labels) if label_length is None else ops.cast(label_length, "int32")
    return ops.ctc_loss(labels, log_probs, lengths, ops.cast(logit_lengths, "int32"), mask_index=BLANK)


@keras.saving.register_keras_serializable(package="coughclf")
class CTCModel(keras.Model):
    """A functional model with outputs ``{"log_probs", "logit_length"}`` that trains with CTC.

    ``model.compile(optimizer)`` needs no loss: ``fit`` takes ``(inputs, labels)``
    batches with labels padded with the blank, and minimises the batch mean of
    :func:`ctc_loss` (plus any regularisation losses). It saves and loads like any
    functional model (``.keras``, ``safe_mode=True``).
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = ops.mean(ctc_loss(y, y_pred["log_probs"], y_pred["logit_length"]))
        for extra in self.losses:
            loss = loss + ops.sum(extra)
        return loss


def decode_ids(log_probs, logit_lengths, strategy="greedy", beam_width=32):
    """Best path per example as a list of int arrays (blank and padding removed), via ``keras.ops.ctc_decode``."""
    if strategy not in _KERAS_DECODERS:
        raise ValueError(f"unknown CTC decoder {strategy!r} for keras.ops.ctc_decode; choose one of "
                         f"{_KERAS_DECODERS}")
    decoded, _ = ops.ctc_decode(log_probs, ops.cast(logit_lengths, "int32"), strategy=strategy,
                                beam_width=beam_width, top_paths=1, mask_index=BLANK)
    best = ops.convert_to_numpy(decoded)[0]
    return [row[row > BLANK] for row in best]


def decode_batch(log_probs, logit_lengths, strategy="greedy", beam_width=32, lexicon=None):
    """Texts of a batch of per-frame log-probabilities: greedy, beam-search or lexicon CTC decoding
    (``"lexicon"`` needs ``lexicon``, see :func:`lexicon_decode_numpy`)."""
    if strategy == "lexicon":
        if not lexicon:
            raise ValueError("the lexicon decoder needs a lexicon: the words it may write")
        log_probs, logit_lengths = ops.convert_to_numpy(log_probs), ops.convert_to_numpy(logit_lengths)
        return [lexicon_decode_numpy(example, lexicon, length, beam_width)
                for example, length in zip(log_probs, logit_lengths)]
    if strategy not in DECODERS:
        raise ValueError(f"unknown CTC decoder {strategy!r}; choose one of {DECODERS}")
    return [decode(ids) for ids in decode_ids(log_probs, logit_lengths, strategy, beam_width)]


def lexicon_decode_numpy(log_probs, lexicon, length=None, beam_width=32):
    """Text of one example's ``[frames, classes]`` log-probabilities, written only in ``lexicon``'s words.

    CTC prefix beam search (Hannun et al., 2014: each prefix carries the probability of
    its alignments ending in a blank and in a character, summed over all of them) in
    which a prefix may only grow into words of ``lexicon``: a character is allowed when
    the word being spelt stays the beginning of a lexicon word, the space only after a
    whole word, and the result ends on a whole word. A character model that spells a
    word slightly wrong, or runs two words together ("noes" for "no yes"), is read as
    the lexicon's most probable word sequence — what a lexicon does in any ASR decoder,
    here without a language model (every word sequence is equally likely a priori).
    """
    log_probs = np.asarray(log_probs, np.float64)[:length]
    words = set(lexicon)
    if not words or any(not word or set(word) - set(CHARACTERS[1:]) for word in words):
        raise ValueError("a lexicon is a non-empty set of words of the characters "
                         f"{CHARACTERS[1:]!r} (no spaces, no empty word)")
    continuations = defaultdict(set)  # what may follow each beginning of a lexicon word
    for word in words:
        for end in range(len(word)):
            continuations[word[:end]].add(word[end])
        continuations[word].add(" ")
    index = dict(zip(CHARACTERS, encode(CHARACTERS).tolist()))
    beams = {"": (0.0, -math.inf)}  # prefix -> (log P(ends in blank), log P(ends in a character))
    for frame in log_probs:
        grown = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (blank, character) in beams.items():
            either = np.logaddexp(blank, character)
            stay = grown[prefix]
            stay[0] = np.logaddexp(stay[0], either + frame[BLANK])
            last = prefix[-1:]
            if last:  # the last character again, with no blank between: the same prefix
                stay[1] = np.logaddexp(stay[1], character + frame[index[last]])
            word = prefix[prefix.rfind(" ") + 1:]
            for char in continuations.get(word, ()):
                longer = grown[prefix + char]
                # A repeated character needs a blank between its two alignments.
                longer[1] = np.logaddexp(longer[1], (blank if char == last else either) + frame[index[char]])
        ranked = sorted(grown.items(), key=lambda item: -np.logaddexp(*item[1]))
        beams = dict((prefix, tuple(scores)) for prefix, scores in ranked[:beam_width])
    finished = [(np.logaddexp(*scores), prefix) for prefix, scores in beams.items()
                if prefix[prefix.rfind(" ") + 1:] in words]
    return max(finished)[1] if finished else ""


def greedy_decode_numpy(log_probs, length=None):
    """Text of one example's ``[frames, classes]`` log-probabilities, in NumPy only.

    The best class per frame, repeats merged, blanks dropped: the decoding for a
    model exported to TFLite, equal to ``decode_batch(..., strategy="greedy")``.
    """
    best = np.argmax(np.asarray(log_probs)[:length], axis=-1)
    keep = np.ones(best.shape, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return decode(best[keep & (best != BLANK)])


def edit_distance(reference, hypothesis):
    """Levenshtein distance between two sequences (strings or lists of words).

    One row of the dynamic programme at a time, vectorised: the substitution and
    deletion terms come from the previous row, and insertions along the row are a
    running minimum of ``row[k] + (j − k)``.
    """
    reference, hypothesis = list(reference), list(hypothesis)
    if not reference or not hypothesis:
        return max(len(reference), len(hypothesis))
    vocabulary = {token: index for index, token in enumerate(dict.fromkeys(reference + hypothesis))}
    hypothesis_ids = np.array([vocabulary[token] for token in hypothesis])
    positions = np.arange(len(hypothesis) + 1)
    row = positions.copy()
    for i, token in enumerate(reference, start=1):
        substitution = row[:-1] + (hypothesis_ids != vocabulary[token])
        candidate = np.concatenate([[i], np.minimum(row[1:] + 1, substitution)])
        row = np.minimum.accumulate(candidate - positions) + positions
    return int(row[-1])


def error_rate(references, hypotheses, unit="char"):
    """Corpus error rate: total edit distance over total reference length (``unit`` "char" or "word").

    Returns ``(rate, edits, reference_length)``; the rate is NaN for an empty reference set.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    split = (lambda text: text.split()) if unit == "word" else (lambda text: text)
    edits = sum(edit_distance(split(ref), split(hyp)) for ref, hyp in zip(references, hypotheses))
    total = sum(len(split(ref)) for ref in references)
    return (edits / total if total else float("nan")), edits, total


def character_error_rate(references, hypotheses):
    """CER: character edits (spaces included) over reference characters."""
    return error_rate(references, hypotheses, "char")[0]


def word_error_rate(references, hypotheses):
    """WER: word edits over reference words."""
    return error_rate(references, hypotheses, "word")[0]
