"""Training and evaluation of CTC speech recognisers (configs with ``task = "ctc"``).

``coughclf train`` and ``coughclf evaluate`` hand ``ctc`` configs to :func:`plan_fit`
and :func:`evaluate_ctc` (:mod:`coughclf.tasks`). The run folder is the classifiers' (config.toml,
split.json, best.keras, history.json/csv, resume.weights.h5, training.json, metrics.json) plus
``examples.csv``: every evaluated utterance with its reference and decoded texts, and
``plots/learning_curves.png``: the loss and the validation CER and WER per epoch.

Batches are whole utterances zero-padded to the longest in the batch, with their
lengths (``make_dataset(variable_length=True)``); transcripts are normalised
(:func:`coughclf.text.normalize`) and encoded in the tf.data graph as blank-padded
label rows. Each epoch a callback decodes the validation split greedily, adds
``val_cer`` / ``val_wer`` to the logs, prints a few reference/hypothesis pairs and
keeps the model of the lowest CER as ``best.keras`` (without a validation split: the
lowest training loss). Utterances too short for their transcript (CTC needs at least
one frame per character, plus one between repeated characters) are left out of
training and reported.

The ``[ctc]`` table (all optional)::

    [ctc]
    numbers_as_words = true     # "42" -> "forty two" before encoding
    decoder = "beam_search"     # the decoder whose CER/WER metrics.json reports first:
                                # greedy | beam_search | lexicon (only words of the lexicon)
    beam_width = 32
    lexicon = ""                # lexicon decoder: a word list file (one per line); "" = the
                                # words of the run's training transcripts
    examples = 3                # transcriptions printed per epoch
    bucket_boundaries = []      # utterance durations (s) that split batches into buckets
    word_crops = 0.0            # share of training utterances cut to start at a random word

Word crops (:func:`word_starts`) are for corpora whose words are separated by silence
(yesno, digit sequences): a cropped utterance loses the words before one of its words
(audio and transcript) and keeps its leading silence. They break priors on the words'
positions that a bidirectional RNN otherwise learns from a small corpus (every
training utterance of yesno starts with "no").
"""

from pathlib import Path

import numpy as np

from coughclf.config import model_options
from coughclf.console import report
from coughclf.epoch_keys import random_keys
from coughclf.errors import CoughclfError
from coughclf.files import read_json, write_csv, write_json
from coughclf.fitting import FitPlan
from coughclf.inputs import model_input, run_data, selected_ids
from coughclf.optim import make_optimizer
from coughclf.runs import evaluation_tag, load_best_model, run_config
from coughclf.text import BLANK, CHARACTERS, decode, encode, normalize

def ctc_settings(config):
    """The ``[ctc]`` table (checked by ``load_config``), once its lexicon file is found to exist."""
    settings = config["ctc"]
    if settings["lexicon"] and not Path(settings["lexicon"]).is_file():
        raise CoughclfError(f"{config.source}: ctc.lexicon = {settings['lexicon']!r} is not a file; give a word "
                            "list (one word per line) or \"\" for the words of the training transcripts")
    return settings


# --- data ----------------------------------------------------------------------------------------

def normalized_transcripts(cache, ids, numbers_as_words=True):
    """``{id: normalised transcript}`` for ``ids``; a clip without a transcript is an error."""
    rows = {row["id"]: row for row in cache.manifest}
    missing = [clip_id for clip_id in ids if not rows[clip_id].get("transcript")]
    if missing:
        raise CoughclfError(f"{cache.root}: {len(missing)} clips have no transcript (e.g. {missing[0]}); "
                            "CTC training needs a speech corpus with transcripts")
    return {clip_id: normalize(rows[clip_id]["transcript"], numbers_as_words) for clip_id in ids}


def read_lexicon(path, numbers_as_words=True):
    """The sorted words of a word list file (one or more per line, normalised like transcripts)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return _checked_lexicon({word for line in lines for word in normalize(line, numbers_as_words).split()}, path)


def lexicon_words(settings, training_texts):
    """The words the lexicon decoder may write: ``[ctc] lexicon``'s file (:func:`read_lexicon`)
    or else every word of ``training_texts``."""
    if settings["lexicon"]:
        return read_lexicon(settings["lexicon"], settings["numbers_as_words"])
    return _checked_lexicon({word for text in training_texts for word in text.split()}, "(training transcripts)")


def _checked_lexicon(words, source):
    if not words:
        raise CoughclfError(f"the lexicon {source} holds no words")
    return sorted(words)


def run_lexicon(config, run_dir, settings):
    """The lexicon of a run's evaluation: the ``[ctc] lexicon`` file, else the words of the run's
    own training transcripts (read from its split.json and its data only then)."""
    if settings["lexicon"]:
        return lexicon_words(settings, ())
    training = read_json(Path(run_dir) / "split.json")["train"]
    return lexicon_words(settings, normalized_transcripts(run_data(config, run_dir), training,
                                                          settings["numbers_as_words"]).values())


def required_frames(text):
    """The fewest CTC frames that can emit ``text``: one per character, one more per repeated pair."""
    return len(text) + sum(a == b for a, b in zip(text, text[1:]))


def feasible_ids(cache, ids, texts, model):
    """``(kept, dropped)``: ids whose logit frames in ``model`` can hold their transcript, and the others."""
    samples = {row["id"]: int(row["num_samples"]) for row in cache.manifest}
    frames = logit_frames(model, [samples[clip_id] for clip_id in ids])
    fits = {clip_id: count >= required_frames(texts[clip_id]) for clip_id, count in zip(ids, frames)}
    return [i for i in ids if fits[i]], [i for i in ids if not fits[i]]


def word_starts(audio, sample_rate, words, *, frame_seconds=0.01, core_db=20.0, longest_word=1.0,
                onset_seconds=0.1):
    """Sample offsets where each of an utterance's ``words`` words begins, or None.

    Frames (their dB smoothed over five) within ``core_db`` of the loudest are the
    words' cores; the ``words − 1`` longest pauses between cores are the gaps between
    the words, and a later word begins at the quietest frame of the gap before it. The
    first word begins ``onset_seconds`` before its core. None when the cores leave
    fewer pauses than gaps, or when a word between two cuts lasts over
    ``longest_word`` seconds (a gap was missed: noise, a click).
    """
    frame = max(1, int(round(frame_seconds * sample_rate)))
    count = len(audio) // frame
    if words < 1 or count == 0:
        return None
    energy = np.mean(np.square(np.asarray(audio[:count * frame], np.float64)).reshape(count, frame), axis=1)
    decibels = np.convolve(np.pad(10 * np.log10(energy + 1e-12), 2, mode="edge"), np.ones(5) / 5, mode="valid")
    core = np.flatnonzero(decibels > decibels.max() - core_db)
    pauses = np.flatnonzero(np.diff(core) > 1)  # core[p] ends a core, core[p + 1] starts the next
    if len(pauses) < words - 1:
        return None
    longest = np.sort(pauses[np.argsort(core[pauses] - core[pauses + 1], kind="stable")[:words - 1]])
    cuts = [core[p] + 1 + int(np.argmin(decibels[core[p] + 1:core[p + 1]])) for p in longest]
    # The first word may follow a long silence; every later one is a word and a pause at most.
    if np.any(np.diff([*cuts, core[-1]]) * frame_seconds > longest_word):
        return None
    onset = max(0, int(core[0]) - int(round(onset_seconds / frame_seconds)))
    return [int(index) * frame for index in (onset, *cuts)]


def word_crop_table(cache, ids, texts):
    """``{id: (sample offsets, label offsets)}`` where each utterance's words begin.

    Utterances whose silences do not separate all their words (:func:`word_starts`)
    get their first word only: they are never cropped.
    """
    from coughclf.pipeline import make_dataset

    table = {}
    for inputs, _ in make_dataset(cache, ids, mode="eval", batch_size=16, variable_length=True, with_ids=True):
        for clip_id, audio, length in zip(np.asarray(inputs["id"]), np.asarray(inputs["audio"]),
                                          np.asarray(inputs["length"])):
            text = texts[clip_id.decode()]
            labels = [0] + [index + 1 for index, character in enumerate(text) if character == " "]
            samples = word_starts(audio[:length], cache.sample_rate, len(labels))
            table[clip_id.decode()] = (samples, labels) if samples else ([0], [0])
    return table


def _crop_words(inputs, labels, crops, row_of, share, seed):
    """Drop, with probability ``share``, the words before a random one of each utterance's words.

    The audio from the first word's beginning to the chosen word's is cut out, so the
    utterance keeps its own leading silence: a prior tied to that silence (the first
    word after it) cannot survive the crops.
    """
    import tensorflow as tf

    sample_starts, label_starts = crops
    rows = row_of.lookup(inputs["id"])
    starts, label_offsets = tf.gather(sample_starts, rows), tf.gather(label_starts, rows)
    draws = tf.random.stateless_uniform([2, tf.shape(rows)[0]], seed=seed)
    words = tf.cast(starts.row_lengths(), tf.float32)
    chosen = tf.where(draws[0] < share, tf.cast(tf.floor(draws[1] * words), tf.int32), 0)[:, None]
    starts = starts.to_tensor()
    first, cut = starts[:, :1], tf.gather(starts, chosen, batch_dims=1) - starts[:, :1]
    label_shift = tf.gather(label_offsets.to_tensor(), chosen, batch_dims=1)

    def cut_out(rows_2d, begin, count, fill):
        """``rows_2d`` without ``count`` columns from ``begin`` on (per row), ``fill`` at the end."""
        positions = tf.range(tf.shape(rows_2d)[1])[None, :]
        positions = tf.where(positions >= begin, positions + count, positions)
        taken = tf.gather(rows_2d, tf.minimum(positions, tf.shape(rows_2d)[1] - 1), batch_dims=1)
        return tf.where(positions < tf.shape(rows_2d)[1], taken, fill)

    lengths = inputs["length"] - cut[:, 0]
    audio = cut_out(inputs["audio"], first, cut, 0.0)
    audio = tf.where(tf.range(tf.shape(audio)[1])[None, :] < lengths[:, None], audio, 0.0)
    return {**inputs, "audio": audio, "length": lengths}, cut_out(labels, 0, label_shift, BLANK)


def make_ctc_dataset(cache, ids, texts, *, mode, batch_size, seed=0, shuffle_buffer=1024,
                     bucket_boundaries=None, with_ids=False, word_crops=0.0):
    """``({"audio" [B, T], "length" [B]}, labels [B, L] blank-padded)`` batches of ``ids``.

    ``texts`` maps each id to its normalised transcript; the labels are encoded in the
    graph (no Python per batch). With ``with_ids`` the inputs also carry ``"id"``. In
    ``"train"`` mode a share ``word_crops`` of the utterances start at a random word
    instead (silence-separated words only; see the module docstring).
    """
    import tensorflow as tf

    from coughclf.pipeline import make_dataset

    dataset = make_dataset(cache, ids, mode=mode, batch_size=batch_size, seed=seed, variable_length=True,
                           bucket_boundaries=bucket_boundaries or None, shuffle_buffer=shuffle_buffer,
                           with_ids=True)
    encoded = [encode(texts[clip_id]) for clip_id in ids]
    flat = tf.constant(np.concatenate(encoded) if encoded else np.zeros(0, np.int32), tf.int32)
    label_rows = tf.RaggedTensor.from_row_lengths(flat, [len(row) for row in encoded])
    row_of = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(ids)), tf.range(len(ids), dtype=tf.int64)), -1)
    crops = None
    if mode == "train" and word_crops > 0:
        table = word_crop_table(cache, ids, texts)
        cropped = sum(len(table[clip_id][0]) > 1 for clip_id in ids)
        report(f"word crops: {cropped} of {len(ids)} training utterances have silences between all their words")
        crops = tuple(tf.ragged.constant([table[clip_id][part] for clip_id in ids], tf.int32) for part in (0, 1))
        # One seed per batch, new each epoch and deterministic under the run's seed.
        dataset = tf.data.Dataset.zip(dataset, random_keys(seed))

    def arrange(inputs, _label, batch_seed=None):
        labels = tf.gather(label_rows, row_of.lookup(inputs["id"])).to_tensor(default_value=BLANK)
        if crops is not None:
            inputs, labels = _crop_words(inputs, labels, crops, row_of, word_crops,
                                         tf.stack([batch_seed, tf.constant(seed, tf.int64)]))
        features = {"audio": inputs["audio"], "length": inputs["length"]}
        if with_ids:
            features["id"] = inputs["id"]
        return features, labels

    if crops is not None:
        return dataset.map(lambda batch, batch_seed: arrange(*batch, batch_seed), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.map(arrange, num_parallel_calls=tf.data.AUTOTUNE)


# --- model ---------------------------------------------------------------------------------------

def build_ctc_model(config, sample_rate):
    """The configured CTC model, waveform input (log-mel and augmentation inside)."""
    from coughclf import models

    name = config["model"]["name"]
    if config["model"]["input_mode"] != "waveform":
        raise CoughclfError(f"{config.source}: model.input_mode = {config['model']['input_mode']!r}, but CTC "
                            "training feeds raw audio; use input_mode = 'waveform'")
    options = model_options(config)
    if options.get("vocab_size", len(CHARACTERS)) != len(CHARACTERS):
        raise CoughclfError(f"{config.source}: model.vocab_size must be {len(CHARACTERS)} (the characters of "
                            "coughclf.text); remove it from [model]")
    options = {**options, "input_mode": "waveform", "sample_rate": sample_rate,
               "frontend": model_input(config).frontend}
    if config["augment"]:
        from coughclf.layers.augment import build_augmentation

        waveform_layers, spec_layers = build_augmentation(config["augment"])
        options.update(waveform_augmentation=waveform_layers or None, spec_augmentation=spec_layers or None)
    return models.build(name, **options)


def logit_frames(model, samples):
    """The model's logit frames for clips of ``samples`` samples, through its own length layers."""
    lengths = np.asarray(samples, np.int32)
    return np.asarray(model.get_layer("logit_length")(model.get_layer("frame_length")(lengths)))


def transcribe(model, batches, strategies=("greedy",), beam_width=32, lexicon=None):
    """Run ``model`` over ``(inputs, labels)`` batches: references, decoded texts per strategy, ids.

    Returns ``(references, {strategy: hypotheses}, ids)``; ids are empty unless the
    inputs carry ``"id"``. The ``"lexicon"`` strategy needs ``lexicon``.
    """
    from coughclf.ctc import decode_batch

    references, hypotheses, ids = [], {strategy: [] for strategy in strategies}, []
    for inputs, labels in batches:
        inputs = dict(inputs)
        if "id" in inputs:
            ids += [value.decode() for value in np.asarray(inputs.pop("id"))]
        # NumPy, not the pipeline's TensorFlow tensors: a model on JAX or PyTorch takes no others.
        outputs = model.predict_on_batch({name: np.asarray(value) for name, value in inputs.items()})
        references += [decode(row) for row in np.asarray(labels)]
        for strategy in strategies:
            hypotheses[strategy] += decode_batch(outputs["log_probs"], outputs["logit_length"], strategy,
                                                 beam_width, lexicon)
    return references, hypotheses, ids


def _print_examples(references, hypotheses, count):
    for reference, hypothesis in list(zip(references, hypotheses))[:count]:
        report(f"    ref: {reference}\n    hyp: {hypothesis}")


def _transcription_callback(validation, examples):
    """The per-epoch validation CER/WER callback (a closure over keras)."""
    import keras

    from coughclf.ctc import error_rate

    class TranscriptionMetrics(keras.callbacks.Callback):
        """Validation CER/WER into the epoch's logs (for the checkpoint, history and early stop), and examples."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            references, hypotheses, _ = transcribe(self.model, validation)
            logs["val_cer"] = error_rate(references, hypotheses["greedy"], "char")[0]
            logs["val_wer"] = error_rate(references, hypotheses["greedy"], "word")[0]
            report(f"\nepoch {epoch + 1}: validation CER {logs['val_cer']:.2%}, WER {logs['val_wer']:.2%}")
            _print_examples(references, hypotheses["greedy"], examples)

    return TranscriptionMetrics()


# --- training -----------------------------------------------------------------------------------

def plan_fit(config, run_dir, cache, split, strategy):
    """The CTC part of :func:`coughclf.fitting.fit_run`: model, utterance batches, CER monitor.

    Training utterances too short for their transcript are left out (and counted in
    training.json); best.keras is the model of the lowest validation CER (without a
    validation split: of the lowest training loss).
    """
    settings, train = ctc_settings(config), config["train"]
    with strategy.scope():
        model = build_ctc_model(config, cache.sample_rate)
        model.compile(optimizer=make_optimizer(config))
    texts = normalized_transcripts(cache, split["train"] + split["validation"], settings["numbers_as_words"])
    train_ids, dropped = feasible_ids(cache, split["train"], texts, model)
    if not train_ids:
        raise CoughclfError(f"{config.source}: all {len(dropped)} training utterances are too short for their "
                            "transcripts (CTC needs a frame per character); lower frontend.hop_length or "
                            "model.conv_stride")
    if dropped:
        print(f"left out {len(dropped)} training utterances too short for their transcript (e.g. {dropped[0]})")
    batches = {"batch_size": train["batch_size"], "seed": train["seed"],
               "bucket_boundaries": settings["bucket_boundaries"]}
    train_data = make_ctc_dataset(cache, train_ids, texts, mode="train", word_crops=settings["word_crops"],
                                  shuffle_buffer=config["data"]["shuffle_buffer"], **batches)
    validation = (make_ctc_dataset(cache, split["validation"], texts, mode="eval", **batches)
                  if split["validation"] else None)
    callbacks = (_transcription_callback(validation, settings["examples"]),) if validation is not None else ()
    return FitPlan(model, train_data, validation, "val_cer" if validation is not None else "loss", "min",
                   callbacks=callbacks, verbose=2,
                   summary={"train_utterances": len(train_ids), "left_out_too_short": dropped})


# --- evaluation ---------------------------------------------------------------------------------

def evaluate_ctc(run_dir, data=None, split="test", *, make_plots=True):
    """CER and WER of the run's ``best.keras`` on ``split`` (greedy and beam search); writes metrics.json.

    ``data`` is another prepared cache to evaluate on (default: the run's own). Writes
    ``metrics.json`` and ``examples.csv`` for the run's own test split,
    ``metrics-{split}[-{cache}].json`` / ``examples-...csv`` otherwise, and with ``make_plots`` the
    learning curves (loss, validation CER and WER) in ``plots[-...]/``. Returns the metrics.

    Example::

        from coughclf.speech import evaluate_ctc
        print(evaluate_ctc("saved_models/speech_yesno-20250101-120000")["wer"])
    """
    from coughclf.cache import open_cache
    from coughclf.ctc import error_rate

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    model = load_best_model(run_dir)  # before any data is opened: a damaged file fails at once
    settings = ctc_settings(config)
    cache = open_cache(data) if data else run_data(config, run_dir)
    ids = selected_ids(run_dir, cache, split, external=data is not None)
    texts = normalized_transcripts(cache, ids, settings["numbers_as_words"])
    batches = make_ctc_dataset(cache, ids, texts, mode="eval", batch_size=config["train"]["batch_size"],
                               with_ids=True)
    strategies, lexicon = ("greedy", "beam_search"), None
    if settings["decoder"] == "lexicon":
        strategies, lexicon = strategies + ("lexicon",), run_lexicon(config, run_dir, settings)
    references, hypotheses, clip_ids = transcribe(model, batches, strategies, settings["beam_width"], lexicon)
    tag = evaluation_tag(split, data)
    results = {"run": str(run_dir), "task": "ctc", "model": config["model"]["name"], "split": split,
               "cache": str(cache.root), "utterances": len(references), "decoder": settings["decoder"],
               "examples": str(run_dir / f"examples{tag}.csv")}
    for strategy, texts_out in hypotheses.items():
        cer, char_edits, chars = error_rate(references, texts_out, "char")
        wer, word_edits, words = error_rate(references, texts_out, "word")
        results[strategy] = {"cer": cer, "wer": wer, "char_edits": char_edits, "chars": chars,
                             "word_edits": word_edits, "words": words,
                             "sentence_accuracy": float(np.mean([r == h for r, h in zip(references, texts_out)]))}
    results["beam_search"]["beam_width"] = settings["beam_width"]
    if lexicon:
        results["lexicon"].update(beam_width=settings["beam_width"], lexicon_words=len(lexicon))
    results["cer"], results["wer"] = results[settings["decoder"]]["cer"], results[settings["decoder"]]["wer"]
    write_json(run_dir / f"metrics{tag}.json", results)
    write_csv(run_dir / f"examples{tag}.csv",
               [{"id": clip_id, "reference": reference, **{strategy: texts_out[row]
                                                          for strategy, texts_out in hypotheses.items()}}
                for row, (clip_id, reference) in enumerate(zip(clip_ids, references))])
    if make_plots:
        _plot_learning_curves(run_dir, config, tag)
    return results


def _plot_learning_curves(run_dir, config, tag):
    """The loss and the validation CER/WER per epoch (plots[-tag]/learning_curves.png)."""
    from coughclf import plots

    rows = read_json(run_dir / "history.json") if (run_dir / "history.json").exists() else []
    if rows:
        monitor = "val_cer" if "val_cer" in rows[0] else "loss"
        plots.learning_curves(rows, run_dir / f"plots{tag}" / "learning_curves.png", monitor=monitor,
                              title=f"{config['name']}: loss and validation CER/WER")


def summary_lines(results):
    """An evaluation's results as readable lines: CER and WER of every decoder, the reported one first."""
    decoders = [results["decoder"], *(name for name in ("greedy", "beam_search", "lexicon")
                                      if name in results and name != results["decoder"])]
    return [f"{results['model']} on {results['utterances']} {results['split']} utterances of {results['cache']}",
            *(f"  {name:<12} CER {results[name]['cer']:.2%}  WER {results[name]['wer']:.2%}  sentences right "
              f"{results[name]['sentence_accuracy']:.2%}" for name in decoders),
            f"  every transcription: {results['examples']}"]


def evaluate_run(run_dir, data=None, split="test", *, make_plots=True, **options):
    """:func:`evaluate_ctc` as the task registry calls it; a classifier's options are refused."""
    if options:
        raise CoughclfError(f"{', '.join(options)}: options of a classifier's evaluation, and {run_dir} is a "
                            "speech (CTC) run")
    return evaluate_ctc(run_dir, data, split, make_plots=make_plots)
