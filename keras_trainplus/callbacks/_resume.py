"""What the callbacks share to resume an interrupted run consistently."""

import warnings

import keras
import numpy as np

from keras_trainplus.callbacks._rates import learning_rate_config
from keras_trainplus.callbacks._rates import set_learning_rate


class DrivenRate:
    """A float learning rate a callback sets during `fit` and gives back at the end.

    The rate to give back is read when the callback is attached to the model
    (`observe`, from `set_model`): before any callback's `on_train_begin`, hence
    before `keras.callbacks.BackupAndRestore` restores a checkpoint that holds a
    rate this callback had set. A run interrupted by an exception skips
    `on_train_end` and leaves the last rate set in the optimizer: when the same
    callback is attached again to the same optimizer and finds that rate, it keeps
    the rate it read first.
    """

    def __init__(self):
        self.original = None
        self._optimizer = None
        self._last = None

    def observe(self, optimizer):
        """Reads the optimizer's rate to give back (from `set_model`)."""
        if optimizer is None:
            return
        rate = learning_rate_config(optimizer)
        if isinstance(rate, dict):
            return
        interrupted = optimizer is self._optimizer and float(rate) == self._last
        if not interrupted:
            self.original = float(rate)

    def begin(self, optimizer):
        """Marks `optimizer` as driven by this run (from `on_train_begin`)."""
        self._optimizer = optimizer

    def set(self, optimizer, rate):
        """Sets the rate; pass `callback.model.optimizer`, so that JAX re-syncs."""
        set_learning_rate(optimizer, rate)
        self._last = float(np.float32(rate))

    def end(self, optimizer):
        """Gives the original rate back (from `on_train_end`)."""
        if self._optimizer is not None:
            set_learning_rate(optimizer, self.original)
            self._optimizer = None


def optimizer_steps(model):
    """The optimizer's step counter as a Python int (one host read)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def warn_if_mid_epoch(owner, model, epoch, expected_steps):
    """Warns when `fit` restarts at `epoch` from a backup taken inside an epoch.

    `keras.callbacks.BackupAndRestore(save_freq=<int>)` saves the model in the
    middle of an epoch but `fit` resumes at the start of that epoch, so the batches
    trained on since the epoch began are trained on again: no callback can make
    such a run equal to an uninterrupted one. It shows as an optimizer step
    counter other than `expected_steps`, the one the epoch boundary implies.
    """
    steps = optimizer_steps(model)
    if steps == expected_steps:
        return
    warnings.warn(
        f"{owner}: training resumes at the start of epoch {epoch} with the optimizer "
        f"at step {steps}, where an epoch boundary implies step {expected_steps}: "
        "the model was restored from a backup saved in the middle of an epoch "
        "(`keras.callbacks.BackupAndRestore(save_freq=<int>)`). Keras restarts "
        "that epoch from its first batch, so the batches it had already trained on "
        "are trained on again and this run cannot match an uninterrupted one. Use "
        "`BackupAndRestore(save_freq='epoch')` for an exact resumption.",
        stacklevel=3,
    )
