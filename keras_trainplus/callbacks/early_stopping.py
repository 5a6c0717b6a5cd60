"""EarlyStopping with non-finite, threshold and divergence stops, resumable."""

import math
import os
import warnings

import keras
import numpy as np

from keras_trainplus._files import prepare_directory
from keras_trainplus._validation import PACKAGE
from keras_trainplus._validation import check_bool
from keras_trainplus._validation import check_choice
from keras_trainplus._validation import check_number
from keras_trainplus._validation import check_path
from keras_trainplus.callbacks import _resume
from keras_trainplus.callbacks import _state_file
from keras_trainplus.callbacks._config import ConfigMixin


@keras.saving.register_keras_serializable(package=PACKAGE)
class EarlyStopping(ConfigMixin, keras.callbacks.EarlyStopping):
    """Stops training when the monitored quantity stops improving, or cannot.

    Early stopping (Prechelt, "Early Stopping - But When?", 1998): stop when the
    validation metric stops improving and keep the best model seen. A subclass of
    `keras.callbacks.EarlyStopping` (same patience, `min_delta`, `baseline` and
    `start_from_epoch` semantics) that adds the stops PyTorch Lightning users know:

    - `check_finite`: stop at once when the monitored value is NaN or infinite;
    - `stopping_threshold`: stop as soon as the value is strictly better than it
      (good enough), i.e. `value < stopping_threshold` in `"min"` mode, `>` in
      `"max"` mode;
    - `divergence_threshold`: stop as soon as the value is strictly worse than it
      (hopeless), i.e. `value > divergence_threshold` in `"min"` mode.

    These three are checked every epoch, also before `start_from_epoch`; patience
    counts from `start_from_epoch`. Both thresholds together must leave a range
    of values that stops neither way (`stopping_threshold < divergence_threshold`
    in `"min"` mode, `>` in `"max"` mode; `ValueError` otherwise).

    A `monitor` the model does not log is an error in `"auto"` mode, as in Keras
    (the direction of an unknown name cannot be inferred; raised at the end of the
    first epoch, when the metrics are known); with an explicit `mode` it is
    warned about once, since a metric can be missing at some epochs (validation
    with `validation_freq > 1`), and training does not stop early while it is
    missing. `stop_reason` records why training stopped
    (one of `"patience"`, `"non_finite"`, `"stopping_threshold"`,
    `"divergence_threshold"`, or `None` when it ran to the end) and
    `stopped_epoch` when. With `restore_best_weights` the weights of the best
    epoch are restored when training ends, whether it stopped early or not;
    `restored_epoch` says which epoch's weights the model holds (`None` if none
    were restored) and `verbose=1` prints it. All state resets at each `fit`, so
    one instance can serve several training phases.

    Resuming: `keras.callbacks.BackupAndRestore` saves the model, the optimizer and
    the epoch, not the callbacks. Give this callback the same `backup_dir`: it then
    writes its state (best value and epoch, wait count, best weights) atomically
    and durably to `backup_dir/early_stopping_<monitor>.npz` after every epoch and,
    when `fit` is restarted at the epoch after the last saved one, continues from
    it. The file is removed with the backup directory when training completes.
    `backup_dir` is checked when training begins. A backup saved in the middle of
    an epoch (`BackupAndRestore(save_freq=<int>)`) cannot be resumed exactly,
    because Keras restarts that epoch from its first batch: the callback warns
    when the state it loads does not match the restored optimizer's step counter.

    Args:
        monitor: the quantity to monitor. Defaults to `"val_loss"`.
        min_delta: minimum change that counts as an improvement. Defaults to `0.0`.
        patience: epochs without improvement before stopping. Defaults to `0`.
        mode: `"min"`, `"max"` or `"auto"` (from the metric's direction). Defaults
            to `"auto"`.
        baseline: value to beat; see `keras.callbacks.EarlyStopping`. Defaults to
            `None`.
        restore_best_weights: restore the best epoch's weights at the end of
            training. Defaults to `True`.
        start_from_epoch: epochs of warm-up before patience counts. Defaults to
            `0`.
        check_finite: stop when the value is NaN or infinite. Defaults to `True`.
        stopping_threshold: stop once the value is better than this. Defaults to
            `None`.
        divergence_threshold: stop once the value is worse than this. Defaults to
            `None`.
        backup_dir: directory (a `str` or `pathlib.Path`) of the
            `BackupAndRestore` callback this one resumes with, or `None`.
            Defaults to `None`.
        verbose: `1` prints why training stopped and which weights were restored.
            Defaults to `0`.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> stop = EarlyStopping(monitor="loss", stopping_threshold=0.01)
    >>> x = np.linspace(-1, 1, 32).reshape(-1, 1)
    >>> _ = model.fit(x, 3 * x, epochs=500, verbose=0, callbacks=[stop])
    >>> stop.stop_reason, stop.restored_epoch == stop.stopped_epoch
    ('stopping_threshold', True)
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        mode="auto",
        baseline=None,
        restore_best_weights=True,
        start_from_epoch=0,
        check_finite=True,
        stopping_threshold=None,
        divergence_threshold=None,
        backup_dir=None,
        verbose=0,
    ):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(
                "Argument `monitor` must be a metric name. "
                f"Received: monitor={monitor!r}"
            )
        check_choice("mode", mode, ("auto", "min", "max"))
        min_delta = check_number("min_delta", min_delta, 0)
        patience = check_number("patience", patience, 0, integer=True)
        start_from_epoch = check_number(
            "start_from_epoch", start_from_epoch, 0, integer=True
        )
        if baseline is not None:
            baseline = check_number("baseline", baseline)
        if stopping_threshold is not None:
            stopping_threshold = check_number("stopping_threshold", stopping_threshold)
        if divergence_threshold is not None:
            divergence_threshold = check_number(
                "divergence_threshold", divergence_threshold
            )
        check_bool("restore_best_weights", restore_best_weights)
        check_bool("check_finite", check_finite)
        backup_dir = check_path("backup_dir", backup_dir, optional=True)
        verbose = check_number("verbose", verbose, 0, 1, integer=True)
        super().__init__(
            monitor=monitor,
            min_delta=min_delta,
            patience=patience,
            verbose=verbose,
            mode=mode,
            baseline=baseline,
            restore_best_weights=restore_best_weights,
            start_from_epoch=start_from_epoch,
        )
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        if mode != "auto":
            self._check_thresholds(mode)
        self.backup_dir = backup_dir
        self.stop_reason = None
        self.restored_epoch = None
        self._warned_missing = False
        self._saved = None

    @property
    def state_path(self):
        """Where the state is saved for resumption (`None` without `backup_dir`)."""
        if self.backup_dir is None:
            return None
        name = "".join(c if c.isalnum() or c in "_-" else "_" for c in self.monitor)
        return os.path.join(self.backup_dir, f"early_stopping_{name}.npz")

    def _check_thresholds(self, mode):
        good, bad = self.stopping_threshold, self.divergence_threshold
        if good is None or bad is None:
            return
        if (good < bad) if mode == "min" else (good > bad):
            return
        better, worse = ("<", ">") if mode == "min" else (">", "<")
        raise ValueError(
            "Arguments `stopping_threshold` and `divergence_threshold` contradict "
            f"each other in mode='{mode}': training stops when the value is "
            f"{better} stopping_threshold (good enough) and when it is {worse} "
            "divergence_threshold (diverged), so stopping_threshold must be "
            f"{better} divergence_threshold. Received: stopping_threshold={good}, "
            f"divergence_threshold={bad}"
        )

    def _resolve_mode(self, logs):
        """Sets the direction in `"auto"` mode, as Keras does, with a clear error."""
        try:
            self._set_monitor_op()
        except ValueError as error:
            raise ValueError(
                f"EarlyStopping cannot tell whether `{self.monitor}` should be "
                "minimized or maximized: it is neither a loss nor a metric of the "
                f"model (logged now: {', '.join(sorted(logs or {})) or 'none'}). "
                "Check the name, or pass mode='min' or mode='max'."
            ) from error
        self._check_thresholds("min" if self.monitor_op is keras.ops.less else "max")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.stop_reason = None
        self.restored_epoch = None
        self._warned_missing = False
        self._saved = None
        if self.backup_dir is not None:
            prepare_directory("backup_dir", self.backup_dir, "early_stopping_*.npz")
            self._saved = _state_file.load(self.state_path)

    def on_epoch_begin(self, epoch, logs=None):
        if self._saved is None:
            return
        (state, arrays), self._saved = self._saved, None
        if state["next_epoch"] != epoch:
            warnings.warn(
                f"EarlyStopping: the saved state in {self.state_path} is for epoch "
                f"{state['next_epoch']}, training resumes at epoch {epoch}; "
                "starting from a fresh state.",
                stacklevel=2,
            )
            return
        if "iterations" in state:
            _resume.warn_if_mid_epoch(
                "EarlyStopping", self.model, epoch, state["iterations"]
            )
        self.wait = state["wait"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.best_weights = list(arrays) if state["has_best_weights"] else None

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None and not self._warned_missing:
            self._warned_missing = True
            warnings.warn(
                f"EarlyStopping conditioned on metric `{self.monitor}` which is not "
                "available: training will not stop early, and no best weights are "
                "kept, while it is missing. Available metrics are: "
                f"{', '.join(sorted(logs)) or 'none'}.",
                stacklevel=2,
            )
        return None if value is None else _scalar(self.monitor, value)

    def _stop(self, epoch, reason):
        self.stop_reason = reason
        self.stopped_epoch = epoch
        self.model.stop_training = True

    def _better(self, value, reference):
        if self.monitor_op is keras.ops.less:
            return value < reference
        return value > reference

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._resolve_mode(logs)
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if not math.isfinite(current):
            if self.check_finite:
                self._stop(epoch, "non_finite")
        else:
            super().on_epoch_end(epoch, logs)
            if self.model.stop_training and self.stopped_epoch == epoch and epoch > 0:
                self.stop_reason = self.stop_reason or "patience"
            if self.stopping_threshold is not None and self._better(
                current, self.stopping_threshold
            ):
                self._stop(epoch, "stopping_threshold")
            elif self.divergence_threshold is not None and self._better(
                self.divergence_threshold, current
            ):
                self._stop(epoch, "divergence_threshold")
        if self.backup_dir is not None:
            self._save_state(epoch)

    def _save_state(self, epoch):
        state = {
            "next_epoch": epoch + 1,
            "iterations": _resume.optimizer_steps(self.model),
            "wait": self.wait,
            "best": None if self.best is None else float(self.best),
            "best_epoch": self.best_epoch,
            "has_best_weights": self.best_weights is not None,
        }
        _state_file.save(self.state_path, state, self.best_weights or ())

    def on_train_end(self, logs=None):
        if self.verbose and self.stop_reason is not None:
            print(
                f"Epoch {self.stopped_epoch + 1}: early stopping "
                f"({self.stop_reason}, {self.monitor}={self.best})."
            )
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            self.restored_epoch = self.best_epoch
            if self.verbose:
                print(
                    f"Restored the weights of epoch {self.best_epoch + 1}, the best "
                    f"{self.monitor}={self.best}."
                )

    def get_config(self):
        return {
            "monitor": self.monitor,
            "min_delta": abs(self.min_delta),
            "patience": self.patience,
            "mode": self.mode,
            "baseline": self.baseline,
            "restore_best_weights": self.restore_best_weights,
            "start_from_epoch": self.start_from_epoch,
            "check_finite": self.check_finite,
            "stopping_threshold": self.stopping_threshold,
            "divergence_threshold": self.divergence_threshold,
            "backup_dir": self.backup_dir,
            "verbose": self.verbose,
        }


def _scalar(name, value):
    """A logged metric as a float; it must hold one value.

    Keras's `EarlyStopping` accepts an array of one element too (e.g. `F1Score()`,
    whose `average=None` logs one value per class, on one class); several values
    have no order to compare (Keras fails on their ambiguous truth value).
    """
    array = np.asarray(keras.ops.convert_to_numpy(value))
    if array.size != 1:
        raise ValueError(
            f"EarlyStopping monitors `{name}`, which was logged with {array.size} "
            f"values (shape {array.shape}); it needs one. Monitor a scalar metric "
            "(e.g. `F1Score(average='macro')`)."
        )
    return float(array.reshape(()))
