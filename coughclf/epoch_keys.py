"""The random keys of the training data: every draw tf.data makes comes from them, epoch by epoch.

The random choices of the data — crops, windows, order and class balancing
(:mod:`coughclf.pipeline`), batch mixing (:mod:`coughclf.mixing`), CTC word crops
(:mod:`coughclf.speech`) — are stateless functions of int64 keys from :func:`random_keys`:
the same seed gives the same keys, and every iteration of a dataset (every epoch) new ones.

What makes an iteration's keys new decides whether a resumed run is the run that was
interrupted:

* by default, ``tf.data.Dataset.random(rerandomize_each_iteration=True)``: the k-th
  iteration *in this process* draws the k-th keys, so a run resumed at epoch k would draw
  epoch 0's again;
* datasets made inside :func:`keyed_by_epoch` (as :func:`coughclf.fitting.fit_run` makes a
  run's) draw the keys of ``(seed, epoch)`` instead, the epoch being the value of the
  block's :class:`EpochClock` when an iteration begins. Training sets the clock at the
  beginning of every epoch (:meth:`EpochClock.callback`), before Keras starts the epoch's
  iteration, so epoch k draws the same keys in an uninterrupted run and in one resumed at k.
"""

import contextlib

_active_clock = None  # the EpochClock of the innermost keyed_by_epoch block


class EpochClock:
    """The epoch whose keys the datasets made under it draw: a variable read as an iteration begins."""

    def __init__(self):
        import tensorflow as tf

        # On the CPU, where tf.data runs: a dataset may not read a variable held on a GPU.
        with tf.device("/cpu:0"):
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_clock")

    def callback(self):
        """A Keras callback setting the clock to each epoch as it begins."""
        import keras

        epoch_variable = self.epoch

        class SetEpochClock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                epoch_variable.assign(epoch)

        return SetEpochClock()


@contextlib.contextmanager
def keyed_by_epoch(active=True):
    """Datasets made inside draw the keys of the epoch on the yielded :class:`EpochClock`.

    ``active=False`` changes nothing: the datasets draw by iteration, as outside, and no dataset
    reads the clock yielded.
    """
    global _active_clock
    clock = EpochClock()
    previous, _active_clock = _active_clock, (clock if active else _active_clock)
    try:
        yield clock
    finally:
        _active_clock = previous


def random_keys(seed):
    """An endless dataset of int64 keys, new with every iteration and the same for the same ``seed``
    (``None``: unseeded); keyed by the epoch inside :func:`keyed_by_epoch` (see the module docstring)."""
    import tensorflow as tf

    if _active_clock is None or seed is None:
        return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    epoch_variable = _active_clock.epoch

    def keys_of_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        return tf.data.Dataset.counter().map(lambda index: tf.random.stateless_uniform(
            [], seed=tf.random.experimental.stateless_fold_in(epoch_seed, index), dtype=tf.int64,
            minval=None, maxval=None))

    # The clock is read when the iteration produces its first key, after the epoch has begun. Endless, as
    # Dataset.random: zipped with a dataset, the pair keeps that dataset's length, which Keras reads.
    keys = tf.data.Dataset.range(1).map(lambda _: epoch_variable.read_value()).flat_map(keys_of_epoch)
    return keys.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
