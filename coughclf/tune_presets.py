"""The default search spaces of ``coughclf tune``, as data: one per model family, one range per augmentation.

:func:`coughclf.tune.default_space` starts from these (``[tune] default_space = true``);
``[tune.space]`` adds to them or drops entries (``"optimizer.weight_decay" = false``).
Each entry is written like a ``[tune.space]`` value: a list (a choice), a table with
``min``/``max`` (a range) or a single value.
"""

LEARNING_RATE = {"min": 1e-5, "max": 1e-2, "sampling": "log"}
DROPOUT = [0.0, 0.1, 0.2]
HEADS = [1, 2, 4]
# The search space of each model family (the module of its builder), from what the reports tuned by
# hand; a "model.*" entry is kept only for models whose builder takes that option.
DEFAULT_SPACES = {
    # Report 1 (spec section 1): Adam lr 1e-4, weight decay 1e-5, dropout 0.2 in the CNNs and none in
    # the CRNNs, batch 16 or 256, 4 attention heads.
    "cough": {"optimizer.lr": LEARNING_RATE, "optimizer.weight_decay": [0.0, 1e-5], "model.dropout": DROPOUT,
              "model.num_heads": HEADS, "train.batch_size": [16, 32, 64]},
    # Report 2 (section 2): Adam, batch 128, 3-6 epochs; the builders have no dropout.
    "kws": {"optimizer.lr": LEARNING_RATE, "optimizer.weight_decay": [0.0, 1e-5],
            "train.batch_size": [32, 64, 128]},
    # Report 4 (section 4): dropout 0.5 in the CNN, 0.1 in the transformer, 1, 2 or 4 heads.
    "esc": {"optimizer.lr": LEARNING_RATE, "optimizer.weight_decay": [0.0, 1e-5], "model.dropout": DROPOUT,
            "model.cnn_dropout": [0.25, 0.5], "model.num_heads": HEADS, "train.batch_size": [16, 32, 64]},
    # Report 3 (section 3): a grid of batch 8/16 and lr 1e-2/1e-3/1e-4 (best: ResNet18, 16, 1e-4).
    "resnet": {"optimizer.lr": [1e-2, 1e-3, 1e-4], "optimizer.weight_decay": [0.0, 1e-5],
               "train.batch_size": [8, 16]},
    "ast": {"optimizer.lr": [1e-3, 1e-4, 1e-5], "optimizer.weight_decay": [0.0, 1e-5], "train.batch_size": [8, 16]},
    # Report 5 (section 5): the RNN width of the lightweight DeepSpeech2.
    "deepspeech": {"optimizer.lr": LEARNING_RATE, "model.rnn_units": [128, 256, 512],
                   "train.batch_size": [8, 16, 32]},
}
# The strength of each augmentation the config switches on, tuned by default.
AUGMENT_STRENGTHS = {
    "pitch_shift": ("max_semitones", [1.0, 2.0, 3.0]),
    "coloured_noise": ("probability", [0.25, 0.5, 0.75]),
    "background_noise": ("probability", [0.25, 0.5, 0.75]),
    "time_inversion": ("probability", [0.25, 0.5]),
    "polarity_inversion": ("probability", [0.25, 0.5]),
    "time_shift": ("max_seconds", [0.05, 0.1, 0.2]),
    "spec_augment": ("freq_width", [5, 10, 15]),
    "frequency_masking": ("max_width", [5, 10, 15]),
    "time_masking": ("max_width", [4, 8, 16]),
    "time_warp": ("max_warp", [2, 5, 10]),
}
