"""Callback test utilities: interrupted runs, resumption warnings, refused writes."""

import errno
import os
import re
import warnings

import keras
import pytest


class Interrupt(keras.callbacks.Callback):
    """Raises `RuntimeError("interrupted (simulated)")` after batch `batch` of
    epoch `epoch`, once the callbacks listed before it have run."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted (simulated)")


class EpochCounter(keras.callbacks.Callback):
    """Records the epochs that began."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def mid_epoch_warnings(run):
    """Calls `run()` and returns the messages of its mid-epoch resumption warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught if "middle of an epoch" in str(w.message)]


def refuse_writes(monkeypatch, directory):
    """Makes creating a file in `directory` fail as a read-only directory does,
    whoever runs the test (root writes in a directory of mode 0o555)."""
    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) == os.fspath(directory):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)


def assert_mid_epoch_resume_warns(run, interrupt, save_freq, expected):
    """Runs `run([interrupt])`, which must be interrupted, then resumes with `run([])`.

    The resumed run must warn once, with a message starting with `expected`, when
    `BackupAndRestore` saved inside epochs (`save_freq` an integer), and not at all
    when it saved at their ends (`save_freq="epoch"`).
    """
    with pytest.raises(RuntimeError, match="interrupted"):
        run([interrupt])
    messages = mid_epoch_warnings(lambda: run([]))
    if save_freq == "epoch":
        assert messages == []
    else:
        assert len(messages) == 1, messages
        assert messages[0].startswith(expected), messages[0]
        assert "save_freq='epoch'" in messages[0]


def assert_rejected_before_training(fit, argument, path, reason, cause=""):
    """`fit(callbacks)` must refuse directory argument `argument` before any epoch,
    for `reason` (and the file system's `cause`, a regular expression)."""
    counter = EpochCounter()
    with pytest.raises(
        ValueError,
        match=rf"Argument `{argument}` must be a directory this process can write "
        rf"to: {reason}\. Received: {argument}='{re.escape(os.fspath(path))}'{cause}",
    ):
        fit([counter])
    assert counter.epochs == []
