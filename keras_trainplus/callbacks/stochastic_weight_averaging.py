"""Stochastic Weight Averaging (SWA) callback."""

import os
import warnings

import keras

from keras_trainplus._files import prepare_directory
from keras_trainplus._validation import PACKAGE
from keras_trainplus._validation import check_number
from keras_trainplus._validation import check_path
from keras_trainplus.callbacks import _resume
from keras_trainplus.callbacks import _state_file
from keras_trainplus.callbacks._config import ConfigMixin
from keras_trainplus.callbacks._rates import learning_rate_config
from keras_trainplus.callbacks.batch_norm_recalibration import batch_norm_layers
from keras_trainplus.callbacks.batch_norm_recalibration import recalibrate_batch_norm


@keras.saving.register_keras_serializable(package=PACKAGE)
class StochasticWeightAveraging(ConfigMixin, keras.callbacks.Callback):
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
    every epoch, atomically and durably (temporary file flushed to disk, then
    `os.replace`), keeping the last two epochs' states. When `fit` resumes at epoch
    `e`, the state saved after epoch `e - 1` is loaded, so no epoch is lost or
    counted twice. The files are deleted when training ends. `backup_dir` is
    checked when training begins. A backup `BackupAndRestore` saved in the middle
    of an epoch (`save_freq=<int>`) cannot be resumed exactly, because Keras
    restarts that epoch from its first batch: the callback warns when the state it
    loads does not match the restored optimizer's step counter.

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
        backup_dir: folder (a `str` or `pathlib.Path`) for the state used to
            resume an interrupted run, or `None` not to save it. Defaults to
            `None`.

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
        self.backup_dir = check_path("backup_dir", backup_dir, optional=True)
        self.averaged_epochs = 0
        self._average = None
        self._rate = _resume.DrivenRate()

    def set_model(self, model):
        super().set_model(model)
        if self.swa_learning_rate is not None:
            self._rate.observe(getattr(model, "optimizer", None))

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
            self._rate.begin(self.model.optimizer)
        if self.backup_dir is not None:
            prepare_directory("backup_dir", self.backup_dir, "swa-state-*.npz")

    def on_epoch_begin(self, epoch, logs=None):
        if not self._resumed:
            # The first epoch of this `fit`, after any `BackupAndRestore` restore.
            self._resumed = True
            if self.backup_dir is not None and epoch > self.start_epoch:
                self._load_state(epoch)
        if self.swa_learning_rate is not None and epoch >= self.start_epoch:
            self._rate.set(self.model.optimizer, self.swa_learning_rate)

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
        state = {
            "count": self.averaged_epochs,
            "iterations": _resume.optimizer_steps(self.model),
        }
        arrays = [keras.ops.convert_to_numpy(a) for a in self._average]
        _state_file.save(self._state_path(completed_epochs), state, arrays)
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
        saved = _state_file.load(path)
        if saved is None:
            warnings.warn(
                f"Resuming at epoch {epoch} without a saved SWA state ({path}): the "
                "average restarts from this epoch.",
                stacklevel=2,
            )
            return
        state, arrays = saved
        variables = self.model.trainable_variables
        if len(arrays) != len(variables):
            raise ValueError(
                f"The SWA state {path} holds {len(arrays)} arrays but the model has "
                f"{len(variables)} trainable variables."
            )
        _resume.warn_if_mid_epoch(
            "StochasticWeightAveraging", self.model, epoch, state["iterations"]
        )
        self.averaged_epochs = state["count"]
        self._average = [
            keras.ops.convert_to_tensor(a, dtype=v.dtype)
            for a, v in zip(arrays, variables)
        ]

    def on_train_end(self, logs=None):
        model = self.model
        if self.backup_dir is not None:
            for completed in self._state_files():
                os.remove(self._state_path(completed))
        self._rate.end(model.optimizer)
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
