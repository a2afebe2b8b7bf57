"""Custom model blocks the reports' architectures need and Keras lacks.

* :class:`TimeLinearPooling` — PyTorch ``Linear(T → 1)`` applied across the time axis
  of ``[batch, T, channels]`` (the CRNNs of the COVID-19 cough report).
* :class:`AttentionPooling` — a learned softmax-weighted mean over the steps of a sequence
  (a pretrained model's patch embeddings into one clip embedding).
* :class:`InferenceBatchNormalization` — batch norm that always normalises with its moving
  statistics (a pretrained network fine-tuned on little data keeps them; its shift still learns).
* :class:`ClassTokens` — learned tokens (CLS, distillation) prepended to a sequence.
* :class:`PositionalEncoding` — sinusoidal or learned positions added to a sequence.
* :class:`SplitHeadSelfAttention` — multi-head self-attention whose heads may have
  different widths, so that an embedding width not divisible by the head count (250
  wide, 4 heads) keeps PyTorch's parameter count ``4 · (E² + E)``.
* :class:`TransformerEncoderLayer` — PyTorch's default post-norm encoder layer.

All layers are pure ``keras.ops`` (TensorFlow and JAX backends) and serialisable.
"""

import itertools
import math

import keras
from keras import ops

from coughclf.compat import backend_rnn

from coughclf.layers.frontend import float32_by_default

PACKAGE = "coughclf"


@keras.saving.register_keras_serializable(package=PACKAGE)
class TimeLinearPooling(keras.layers.Layer):
    """``y[b, c] = Σ_t w[t] · x[b, t, c] + bias``: one learned weight per time step.

    The CRNNs of the cough report apply ``nn.Linear(31, 1)`` to the transposed
    ``[batch, 512, 31]`` sequence; this is the same map without the transposes, with
    ``T + 1`` parameters (32 for 31 steps).

    Example:
        >>> import numpy as np
        >>> pooled = TimeLinearPooling()(np.ones((2, 31, 512), "float32"))
        >>> tuple(pooled.shape)
        (2, 512)
    """

    def __init__(self, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        steps = input_shape[1]
        if steps is None:
            raise ValueError("TimeLinearPooling needs a fixed number of time steps (one weight each)")
        self.kernel = self.add_weight(shape=(steps,), initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(shape=(1,), initializer=self.bias_initializer, name="bias")

    def call(self, inputs):
        return ops.einsum("btc,t->bc", inputs, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling(keras.layers.Layer):
    """``y[b] = Σ_t softmax_t(x[b, t] · w + c) · x[b, t]``: a weighted mean over the steps of
    ``[batch, steps, channels]``, each step's weight learned from its own features
    (``channels + 1`` parameters). It starts as the plain mean (``w = 0``).

    Example:
        >>> import numpy as np
        >>> pooled = AttentionPooling()(np.arange(12, dtype="float32").reshape(1, 3, 4))
        >>> np.round(np.asarray(pooled), 5).tolist()  # untrained: the mean of the 3 steps
        [[4.0, 5.0, 6.0, 7.0]]
    """

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs):
        scores = ops.einsum("btc,c->bt", inputs, ops.cast(self.kernel, inputs.dtype))
        weights = ops.softmax(scores + ops.cast(self.bias, inputs.dtype), axis=1)
        return ops.einsum("bt,btc->bc", weights, inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class InferenceBatchNormalization(keras.layers.BatchNormalization):
    """``BatchNormalization`` in inference mode in training too: the moving statistics normalise and never
    update (``training=False`` on a functional call node would not hold: the model's own ``training``
    flag overrides it). The weights are ``BatchNormalization``'s, so checkpoints map onto it unchanged.

    Example:
        >>> import numpy as np
        >>> layer = InferenceBatchNormalization(scale=False)
        >>> out = layer(np.full((4, 2), 3.0, "float32"), training=True)
        >>> np.asarray(layer.moving_mean).tolist(), bool(np.allclose(out, 3.0 / np.sqrt(1.0 + layer.epsilon)))
        ([0.0, 0.0], True)
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClassTokens(keras.layers.Layer):
    """Prepend ``num_tokens`` learned tokens to ``[batch, steps, width]``.

    One token is a ViT/BERT CLS token; AST uses two (CLS and distillation). The tokens
    are trainable weights, ``num_tokens · width`` parameters — the count a PyTorch
    ``nn.Parameter`` outside any module is easy to leave out of a summary.

    Example:
        >>> import numpy as np
        >>> tuple(ClassTokens()(np.zeros((2, 32, 250), "float32")).shape)
        (2, 33, 250)
    """

    def __init__(self, num_tokens=1, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_tokens = num_tokens
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.TruncatedNormal(stddev=0.02))

    def build(self, input_shape):
        self.tokens = self.add_weight(shape=(self.num_tokens, input_shape[-1]),
                                      initializer=self.initializer, name="tokens")

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        tokens = ops.broadcast_to(ops.expand_dims(ops.cast(self.tokens, inputs.dtype), 0),
                                  (batch, self.num_tokens, ops.shape(inputs)[-1]))
        return ops.concatenate([tokens, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        steps = None if input_shape[1] is None else input_shape[1] + self.num_tokens
        return (input_shape[0], steps, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "initializer": keras.initializers.serialize(self.initializer)}


POSITIONAL_ENCODINGS = ("none", "sinusoidal", "learned")


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionalEncoding(keras.layers.Layer):
    """Add positions to ``[batch, steps, width]``: ``"sinusoidal"`` (Vaswani et al.,
    no weights) or ``"learned"`` (``steps · width`` weights, fixed ``steps``)."""

    def __init__(self, kind="sinusoidal", **kwargs):
        super().__init__(**kwargs)
        if kind not in POSITIONAL_ENCODINGS[1:]:
            raise ValueError(f"positional encoding must be 'sinusoidal' or 'learned', not {kind!r}")
        self.kind = kind

    def build(self, input_shape):
        if self.kind == "learned":
            self.positions = self.add_weight(
                shape=(input_shape[1], input_shape[2]), name="positions",
                initializer=keras.initializers.TruncatedNormal(stddev=0.02))

    def call(self, inputs):
        if self.kind == "learned":
            return inputs + ops.cast(self.positions, inputs.dtype)
        steps, width = ops.shape(inputs)[1], inputs.shape[-1]
        position = ops.expand_dims(ops.cast(ops.arange(steps), "float32"), 1)
        frequency = ops.exp(ops.cast(ops.arange(0, width, 2), "float32") * (-math.log(10000.0) / width))
        angles = position * ops.expand_dims(frequency, 0)
        # interleave sin (even columns) and cos (odd columns), cut to an odd width
        table = ops.reshape(ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1), (steps, -1))
        return inputs + ops.cast(table[:, :width], inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


def balanced_head_widths(embed_dim, num_heads):
    """Split ``embed_dim`` into ``num_heads`` widths differing by at most one, wider first.

    ``balanced_head_widths(250, 4) == [63, 63, 62, 62]``; with equal widths this is
    the usual ``embed_dim // num_heads`` per head.
    """
    base, extra = divmod(embed_dim, num_heads)
    return [base + 1 if head < extra else base for head in range(num_heads)]


@keras.saving.register_keras_serializable(package=PACKAGE)
class SplitHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention with heads of possibly unequal widths.

    Q, K, V and output projections are ``embed_dim × embed_dim`` with biases, exactly
    PyTorch's ``nn.MultiheadAttention(embed_dim, num_heads)``: ``4 · (E² + E)``
    parameters whatever the head count (251,000 for E = 250). PyTorch requires E to be
    divisible by the head count; here the projected width is cut into
    ``head_widths`` (default :func:`balanced_head_widths`, e.g. 63/63/62/62 for 250 and 4
    heads) and each head scales its scores by ``1/√width``. With equal widths this is
    PyTorch's layer.
    """

    def __init__(self, embed_dim, num_heads, head_widths=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_widths = list(head_widths or balanced_head_widths(embed_dim, num_heads))
        if len(self.head_widths) != num_heads or sum(self.head_widths) != embed_dim:
            raise ValueError(f"head_widths {self.head_widths} must be {num_heads} widths summing to "
                             f"{embed_dim}")
        self.dropout = dropout
        self.query, self.key, self.value, self.output_projection = (
            keras.layers.Dense(embed_dim, name=name) for name in ("query", "key", "value", "output"))
        self.attention_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        for projection in (self.query, self.key, self.value):
            projection.build(input_shape)
        self.output_projection.build((*input_shape[:-1], self.embed_dim))

    def _heads(self, x):
        return ops.split(x, list(itertools.accumulate(self.head_widths))[:-1], axis=-1)

    def call(self, inputs, training=None):
        heads = zip(self._heads(self.query(inputs)), self._heads(self.key(inputs)),
                    self._heads(self.value(inputs)), self.head_widths)
        outputs = []
        for query, key, value, width in heads:
            scores = ops.einsum("bqd,bkd->bqk", query, key) / math.sqrt(width)
            # The softmax in float32 under a mixed policy: float16's exponentials overflow.
            weights = ops.cast(ops.softmax(ops.cast(scores, "float32"), axis=-1), scores.dtype)
            weights = self.attention_dropout(weights, training=training)
            outputs.append(ops.einsum("bqk,bkd->bqd", weights, value))
        return self.output_projection(ops.concatenate(outputs, axis=-1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.embed_dim)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "head_widths": self.head_widths, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerEncoderLayer(keras.layers.Layer):
    """PyTorch's default ``nn.TransformerEncoderLayer`` (post-norm, ReLU), on ``[batch, steps, E]``.

    ``x = LN(x + Drop(MHA(x))); x = LN(x + Drop(FFN(x)))`` with
    ``FFN = Linear(E→ffn_dim) → ReLU → Drop → Linear(ffn_dim→E)`` and LayerNorm ε = 1e-5.
    Attention is :class:`SplitHeadSelfAttention`, so any head count keeps
    ``4 · (E² + E)`` attention parameters. For E = 250, ffn_dim 2048: 1,278,298 parameters.

    Example:
        >>> import numpy as np
        >>> layer = TransformerEncoderLayer(250, num_heads=4)
        >>> tuple(layer(np.zeros((2, 33, 250), "float32")).shape)
        (2, 33, 250)
    """

    def __init__(self, embed_dim, num_heads, ffn_dim=2048, dropout=0.1, head_widths=None, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.ffn_dim = ffn_dim
        self.dropout = dropout
        self.attention = SplitHeadSelfAttention(embed_dim, num_heads, head_widths, dropout,
                                                name="self_attention")
        self.feed_forward_in = keras.layers.Dense(ffn_dim, activation="relu", name="ffn_in")
        self.feed_forward_out = keras.layers.Dense(embed_dim, name="ffn_out")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="attention_norm")
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="ffn_norm")
        self.attention_dropout = keras.layers.Dropout(dropout)
        self.inner_dropout = keras.layers.Dropout(dropout)
        self.feed_forward_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.attention.build(input_shape)
        self.feed_forward_in.build(input_shape)
        self.feed_forward_out.build((*input_shape[:-1], self.ffn_dim))
        self.attention_norm.build(input_shape)
        self.feed_forward_norm.build(input_shape)

    def call(self, inputs, training=None):
        attended = self.attention(inputs, training=training)
        x = self.attention_norm(inputs + self.attention_dropout(attended, training=training))
        hidden = self.inner_dropout(self.feed_forward_in(x), training=training)
        transformed = self.feed_forward_out(hidden)
        return self.feed_forward_norm(x + self.feed_forward_dropout(transformed, training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "ffn_dim": self.ffn_dim, "dropout": self.dropout,
                "head_widths": self.attention.head_widths}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InputProjectedLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` that projects all time steps' inputs in one matrix product.

    Keras' generic (non-cuDNN) LSTM multiplies each step's input by the input kernel
    inside the recurrence: ``T`` small ``[batch, d] × [d, 4h]`` products forward and as
    many weight-gradient products backward. Here ``x @ W + b`` runs once over
    ``[batch · T, d]`` before a ``keras.ops.scan`` that only does the recurrent
    ``h @ U``: the same function and the same weights (names, shapes and gate order as
    ``keras.layers.LSTM``, so weights load either way), a faster CPU training step.

    Used when no accelerator is present and there is no mask or dropout; otherwise
    (e.g. cuDNN on a GPU) the stock LSTM path runs.

    It computes in float32 under a mixed-precision policy unless given another ``dtype``:
    JAX's cuDNN LSTM (Keras' path on a GPU) rejects bfloat16, and the cell state sums over
    every time step, where half precision's rounding compounds.
    """

    def __init__(self, units, **kwargs):
        super().__init__(units, **float32_by_default(kwargs))

    def _projected_path_applies(self, mask, training):
        return (mask is None and not self.recurrent_dropout and not (training and self.dropout)
                and self.use_bias
                and not any("gpu" in device.lower() for device in keras.distribution.list_devices()))

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._projected_path_applies(mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell

        def step(projected_input, state):
            hidden, carry = state
            gates = projected_input + ops.matmul(hidden, cell.recurrent_kernel)
            input_gate, forget_gate, candidate, output_gate = ops.split(gates, 4, axis=-1)
            carry = (cell.recurrent_activation(forget_gate) * carry
                     + cell.recurrent_activation(input_gate) * cell.activation(candidate))
            hidden = cell.recurrent_activation(output_gate) * cell.activation(carry)
            return hidden, [hidden, carry]

        # The loop driver of Keras' own RNN layers (coughclf.compat says why no public API does);
        # same go_backwards/unroll/output conventions.
        return backend_rnn()(step, ops.matmul(sequences, cell.kernel) + cell.bias, list(initial_state),
                             go_backwards=self.go_backwards, unroll=self.unroll,
                             input_length=sequences.shape[1], return_all_outputs=self.return_sequences)
