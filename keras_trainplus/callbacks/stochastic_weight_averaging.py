"""Stochastic Weight Averaging (SWA) callback."""

import os
import warnings

import keras
import numpy as np

from keras_trainplus._files import atomic_path
from keras_trainplus._validation import check_number
from keras_trainplus.callbacks._rates import learning_rate_config
from keras_trainplus.callbacks._rates import set_learning_rate
from keras_trainplus.callbacks.batch_norm_recalibration import batch_norm_layers
from keras_trainplus.callbacks.batch_norm_recalibration import recalibrate_batch_norm


@keras.saving.register_keras_serializable(package="keras_trainplus")
class StochasticWeightAveraging(keras.callbacks.Callback):
    """Averages the weights visited from `start_epoch` on (SWA).

    Stochastic Weight Averaging (Izmailov et al. 2018, arXiv:1803.05407) keeps a
    running average of the weights reached at the end of each epoch from
    `start_epoch` on, usually with a constant (or cyclic) "SWA learning rate", and
    ends training on that average: a flatter point that generalizes better than the
    last iterate. With `w_n` the trainable weights after the `n`-th averaged epoch,

        w_swa <- w_swa + (w_n - w_swa) / n,

    i.e. `w_swa` is the arithmetic mean of `w_1, ..., w_n` (the paper's update with
    cycle length 1 epoch). The average is kept on the device as tensors and updated
    once per epoch, outside the training step; at the end of training it is written
    into the model's trainable variables.

    `keras.callbacks.BackupAndRestore` saves the model but not this average: give
    `backup_dir` and the callback saves its state (average and count) at the end of
    every epoch, atomically (temporary file + `os.replace`), keeping the last two
    epochs' states. When `fit` resumes at epoch `e`, the state saved after epoch
    `e - 1` is loaded, so no epoch is lost or counted twice. The files are deleted
    when training ends.

    Averaged weights invalidate the BatchNormalization moving statistics (they
    belong to none of the averaged models), so when `recalibration_data` is given
    the callback finally runs `recalibrate_batch_norm` over it; otherwise it warns
    if the model has BatchNormalization layers.

    Args:
        start_epoch: first (0-based) epoch whose final weights enter the average,
            an integer >= 0; it must be smaller than the `epochs` of `fit`.
            Defaults to none (required).
        swa_learning_rate: constant learning rate set on the optimizer from
            `start_epoch` on, or `None` to leave the rate alone. Needs an optimizer
            built with a float learning rate; the original rate is restored when
            training ends. Defaults to `None`.
        recalibration_data: data for the BatchNormalization pass at the end (an
            array of inputs, or an iterable of batches `x` or `(x, y, ...)` such as
            a `tf.data.Dataset`), or `None` to skip it. It is not part of
            `get_config` (data is not configuration). Defaults to `None`.
        recalibration_steps: number of batches of `recalibration_data` to use, or
            `None` for all of it. Defaults to `None`.
        batch_size: batch size when `recalibration_data` is an array. Defaults to 32.
        backup_dir: folder for the state used to resume an interrupted run, or
            `None` not to save it. Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.BatchNormalization(),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> x, y = np.random.rand(64, 4), np.random.rand(64, 1)
    >>> swa = StochasticWeightAveraging(start_epoch=3, swa_learning_rate=0.05,
    ...                                 recalibration_data=x)
    >>> _ = model.fit(x, y, epochs=6, batch_size=16, callbacks=[swa], verbose=0)
    """

    def __init__(
        self,
        start_epoch,
        swa_learning_rate=None,
        recalibration_data=None,
        recalibration_steps=None,
        batch_size=32,
        backup_dir=None,
    ):
        super().__init__()
        self.start_epoch = check_number("start_epoch", start_epoch, low=0, integer=True)
        self.swa_learning_rate = (
            None
            if swa_learning_rate is None
            else check_number("swa_learning_rate", swa_learning_rate, low=0.0)
        )
        self.recalibration_data = recalibration_data
        self.recalibration_steps = (
            None
            if recalibration_steps is None
            else check_number(
                "recalibration_steps", recalibration_steps, low=1, integer=True
            )
        )
        self.batch_size = check_number("batch_size", batch_size, low=1, integer=True)
        if backup_dir is not None and (
            not isinstance(backup_dir, (str, os.PathLike)) or not str(backup_dir)
        ):
            raise ValueError(
                "Argument `backup_dir` must be None or a non-empty path. "
                f"Received: backup_dir={backup_dir!r}"
            )
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)
        self.averaged_epochs = 0
        self._average = None
        self._original_learning_rate = self._swa_optimizer = None

    def set_model(self, model):
        # Read before any callback's `on_train_begin` (so before `BackupAndRestore`
        # restores a rate this callback had set), unless this callback's own
        # interrupted run (no `on_train_end`) left the SWA rate in the optimizer.
        super().set_model(model)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None or self.swa_learning_rate is None:
            return
        learning_rate = learning_rate_config(optimizer)
        if isinstance(learning_rate, dict):
            return
        interrupted = optimizer is self._swa_optimizer and (
            float(learning_rate) == float(np.float32(self.swa_learning_rate))
        )
        if not interrupted:
            self._original_learning_rate = float(learning_rate)

    def on_train_begin(self, logs=None):
        epochs = self.params.get("epochs")
        if epochs is not None and self.start_epoch >= epochs:
            raise ValueError(
                f"Argument `start_epoch` must be < epochs ({epochs}) so that at least "
                f"one epoch is averaged. Received: start_epoch={self.start_epoch}"
            )
        self.averaged_epochs = 0
        self._average = None
        self._resumed = False
        if self.swa_learning_rate is not None:
            if isinstance(learning_rate_config(self.model.optimizer), dict):
                raise ValueError(
                    "`swa_learning_rate` needs an optimizer built with a float "
                    "learning rate; this one uses a schedule. Pass "
                    "swa_learning_rate=None or a float rate."
                )
            self._swa_optimizer = self.model.optimizer

    def on_epoch_begin(self, epoch, logs=None):
        if not self._resumed:
            # The first epoch of this `fit`, after any `BackupAndRestore` restore.
            self._resumed = True
            if self.backup_dir is not None and epoch > self.start_epoch:
                self._load_state(epoch)
        if self.swa_learning_rate is not None and epoch >= self.start_epoch:
            set_learning_rate(self.model.optimizer, self.swa_learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_epoch:
            return
        weights = [v.value for v in self.model.trainable_variables]
        self.averaged_epochs += 1
        if self._average is None:
            self._average = [keras.ops.copy(w) for w in weights]
        else:
            n = float(self.averaged_epochs)
            self._average = [a + (w - a) / n for a, w in zip(self._average, weights)]
        if self.backup_dir is not None:
            self._save_state(epoch + 1)

    def _state_path(self, completed_epochs):
        return os.path.join(self.backup_dir, f"swa-state-{completed_epochs:05d}.npz")

    def _save_state(self, completed_epochs):
        arrays = {
            f"w{i}": keras.ops.convert_to_numpy(a) for i, a in enumerate(self._average)
        }
        path = self._state_path(completed_epochs)
        with atomic_path(path) as temporary, open(temporary, "wb") as f:
            np.savez(f, count=self.averaged_epochs, **arrays)
        for old in self._state_files():
            if old < completed_epochs - 1:
                os.remove(self._state_path(old))

    def _state_files(self):
        if not os.path.isdir(self.backup_dir):
            return []
        names = os.listdir(self.backup_dir)
        return sorted(
            int(n[len("swa-state-") : -len(".npz")])
            for n in names
            if n.startswith("swa-state-") and n.endswith(".npz")
        )

    def _load_state(self, epoch):
        path = self._state_path(epoch)
        if not os.path.exists(path):
            warnings.warn(
                f"Resuming at epoch {epoch} without a saved SWA state ({path}): the "
                "average restarts from this epoch.",
                stacklevel=2,
            )
            return
        variables = self.model.trainable_variables
        with np.load(path) as state:
            if len(state.files) != len(variables) + 1:
                raise ValueError(
                    f"The SWA state {path} holds {len(state.files) - 1} arrays but the "
                    f"model has {len(variables)} trainable variables."
                )
            self.averaged_epochs = int(state["count"])
            self._average = [
                keras.ops.convert_to_tensor(state[f"w{i}"], dtype=v.dtype)
                for i, v in enumerate(variables)
            ]

    def on_train_end(self, logs=None):
        model = self.model
        if self.backup_dir is not None:
            for completed in self._state_files():
                os.remove(self._state_path(completed))
        if self._swa_optimizer is not None:
            set_learning_rate(model.optimizer, self._original_learning_rate)
            self._swa_optimizer = None
        if self._average is None:
            warnings.warn(
                f"Training ended before start_epoch={self.start_epoch}: no weights "
                "were averaged and the model is left as trained.",
                stacklevel=2,
            )
            return
        for variable, value in zip(model.trainable_variables, self._average):
            variable.assign(value)
        if self.recalibration_data is not None:
            recalibrate_batch_norm(
                model,
                self.recalibration_data,
                steps=self.recalibration_steps,
                batch_size=self.batch_size,
            )
        elif batch_norm_layers(model):
            warnings.warn(
                "The averaged model has BatchNormalization layers whose moving "
                "statistics no longer match its weights: pass `recalibration_data` "
                "or call `keras_trainplus.callbacks.recalibrate_batch_norm`.",
                stacklevel=2,
            )

    def get_config(self):
        return {
            "start_epoch": self.start_epoch,
            "swa_learning_rate": self.swa_learning_rate,
            "recalibration_steps": self.recalibration_steps,
            "batch_size": self.batch_size,
            "backup_dir": self.backup_dir,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
