"""Tests for keras_trainplus.callbacks.EarlyStopping."""

import json
import math
import os
import pathlib
import warnings

import keras
import numpy as np
import pytest

from keras_trainplus.callbacks import EarlyStopping
from tests.helpers import tolerance
from tests.helpers.callbacks import EpochCounter
from tests.helpers.callbacks import Interrupt
from tests.helpers.callbacks import assert_mid_epoch_resume_warns
from tests.helpers.callbacks import assert_rejected_before_training
from tests.helpers.config import assert_config_roundtrip


def _tiny_model():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(keras.optimizers.SGD(0.15), "mse")
    return model


def _drive(callback, values, monitor="val_loss", weights_per_epoch=None):
    """Runs the callback's hooks on made-up logs; returns the last epoch run."""
    model = _tiny_model()
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    last = None
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch)
        if weights_per_epoch is not None:
            model.set_weights([np.full((1, 1), weights_per_epoch[epoch], "float32")])
        callback.on_epoch_end(epoch, {"loss": 0.0, monitor: value})
        last = epoch
        if model.stop_training:
            break
    callback.on_train_end()
    return last, model


# ---------------------------------------------------------------- arguments


def test_config_roundtrip():
    callback = EarlyStopping(
        monitor="val_accuracy",
        min_delta=0.01,
        patience=3,
        mode="max",
        baseline=0.5,
        restore_best_weights=False,
        start_from_epoch=2,
        check_finite=False,
        stopping_threshold=0.99,
        divergence_threshold=0.1,
        backup_dir="/tmp/backup",
        verbose=1,
    )
    assert_config_roundtrip(callback)
    assert EarlyStopping().get_config()["restore_best_weights"] is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"patience": -1},
            r"Argument `patience` must be an integer >= 0\. Received: patience=-1",
        ),
        ({"min_delta": -0.1}, r"Argument `min_delta` must be >= 0"),
        (
            {"mode": "up"},
            r"Argument `mode` must be one of 'auto', 'min', 'max'\. Received: mode='up'",
        ),
        (
            {"start_from_epoch": -2},
            r"Argument `start_from_epoch` must be an integer >= 0",
        ),
        (
            {"stopping_threshold": math.nan},
            r"Argument `stopping_threshold` must be a finite number",
        ),
        (
            {"divergence_threshold": "high"},
            r"Argument `divergence_threshold` must be a finite",
        ),
        ({"check_finite": 1}, r"Argument `check_finite` must be a bool"),
        (
            {"restore_best_weights": None},
            r"Argument `restore_best_weights` must be a bool",
        ),
        (
            {"backup_dir": ""},
            r"Argument `backup_dir` must be a non-empty path \(str or pathlib.Path\) or None\. Received: backup_dir=''",
        ),
        (
            {"backup_dir": 3},
            r"Argument `backup_dir` must be a non-empty path .* Received: backup_dir=3",
        ),
        ({"monitor": ""}, r"Argument `monitor` must be a metric name"),
        ({"verbose": 2}, r"Argument `verbose` must be an integer in \[0, 1\]"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


# ---------------------------------------------------------------- made-up logs


def test_patience():
    callback = EarlyStopping(patience=2)
    last, _ = _drive(callback, [1.0, 0.9, 0.95, 0.97, 0.5])
    assert (last, callback.stopped_epoch, callback.stop_reason) == (3, 3, "patience")
    assert callback.best == 0.9 and callback.best_epoch == 1


def test_one_element_arrays_are_monitored_as_numbers():
    """As Keras's EarlyStopping: e.g. `F1Score()` (average=None) logs shape (1,)."""
    callback = EarlyStopping(patience=2, mode="min")
    values = [np.array([1.0]), np.array([[0.9]], "float32"), np.array(0.95)]
    values += [keras.ops.convert_to_tensor([0.97]), np.array([0.5])]
    last, _ = _drive(callback, values)
    assert (last, callback.stopped_epoch, callback.stop_reason) == (3, 3, "patience")
    assert callback.best == pytest.approx(0.9) and callback.best_epoch == 1
    assert type(callback.best) is float


def test_several_values_are_refused_with_the_metric_name():
    callback = EarlyStopping(monitor="val_f1", mode="max")
    with pytest.raises(
        ValueError,
        match=r"EarlyStopping monitors `val_f1`, which was logged with 3 values \(shape \(3,\)\); it needs one\.",
    ):
        _drive(callback, [np.array([0.1, 0.2, 0.3])], monitor="val_f1")


def test_fit_monitors_a_one_class_f1_score():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=[keras.metrics.F1Score()])
    callback = EarlyStopping(monitor="f1_score", mode="max", patience=1)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callback])
    assert isinstance(callback.best, float) and math.isfinite(callback.best)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_stops_at_once_and_restores_best(bad):
    callback = EarlyStopping(patience=5)
    last, model = _drive(
        callback, [1.0, 0.5, bad, 0.1], weights_per_epoch=[1.0, 2.0, 3.0, 4.0]
    )
    assert (last, callback.stop_reason) == (2, "non_finite")
    assert callback.best == 0.5 and callback.restored_epoch == 1
    assert float(model.get_weights()[0][0, 0]) == 2.0


def test_non_finite_ignored_without_check_finite():
    callback = EarlyStopping(patience=5, check_finite=False)
    last, _ = _drive(callback, [1.0, math.nan, 0.8])
    assert (last, callback.stop_reason) == (2, None)
    assert callback.best == 0.8


@pytest.mark.parametrize(
    "mode, monitor, threshold, values, stop_at",
    [
        ("min", "val_loss", 0.5, [1.0, 0.5, 0.49, 0.1], 2),  # strict: 0.5 is not < 0.5
        ("max", "val_acc", 0.9, [0.5, 0.9, 0.95, 0.99], 2),
    ],
)
def test_stopping_threshold(mode, monitor, threshold, values, stop_at):
    callback = EarlyStopping(
        monitor=monitor, mode=mode, patience=10, stopping_threshold=threshold
    )
    last, _ = _drive(callback, values, monitor=monitor)
    assert (last, callback.stop_reason) == (stop_at, "stopping_threshold")


@pytest.mark.parametrize(
    "mode, monitor, threshold, values, stop_at",
    [
        ("min", "val_loss", 5.0, [1.0, 5.0, 5.1, 0.1], 2),
        ("max", "val_acc", 0.2, [0.5, 0.2, 0.19, 0.9], 2),
    ],
)
def test_divergence_threshold(mode, monitor, threshold, values, stop_at):
    callback = EarlyStopping(
        monitor=monitor, mode=mode, patience=10, divergence_threshold=threshold
    )
    last, _ = _drive(callback, values, monitor=monitor)
    assert (last, callback.stop_reason) == (stop_at, "divergence_threshold")


def test_thresholds_apply_during_warm_up_patience_does_not():
    callback = EarlyStopping(patience=0, start_from_epoch=3, divergence_threshold=10.0)
    last, _ = _drive(callback, [1.0, 2.0, 11.0, 0.5])
    assert (last, callback.stop_reason) == (2, "divergence_threshold")


def test_restores_best_weights_without_early_stop(capsys):
    callback = EarlyStopping(patience=10, verbose=1)
    last, model = _drive(callback, [3.0, 1.0, 2.0], weights_per_epoch=[7.0, 8.0, 9.0])
    assert (last, callback.stop_reason, callback.restored_epoch) == (2, None, 1)
    assert float(model.get_weights()[0][0, 0]) == 8.0
    assert (
        "Restored the weights of epoch 2, the best val_loss=1.0"
        in capsys.readouterr().out
    )


def test_no_restore_when_disabled():
    callback = EarlyStopping(patience=10, restore_best_weights=False)
    _, model = _drive(callback, [3.0, 1.0, 2.0], weights_per_epoch=[7.0, 8.0, 9.0])
    assert callback.restored_epoch is None
    assert float(model.get_weights()[0][0, 0]) == 9.0


def test_missing_monitor_warns_once_with_available_names():
    callback = EarlyStopping(monitor="val_los", mode="min")
    model = _tiny_model()
    callback.set_model(model)
    callback.on_train_begin()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(3):
            callback.on_epoch_end(
                epoch, {"loss": 1.0, "val_loss": 2.0, "accuracy": 0.5}
            )
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "`val_los` which is not available" in messages[0]
    assert "training will not stop early" in messages[0]
    assert "Available metrics are: accuracy, loss, val_loss" in messages[0]


# ---------------------------------------------------------------- real fits


def _data():
    """Training pulls the kernel from 0 to 2, validation prefers 1: val_loss is best
    after epoch 1 (kernel 0.6, 1.02, 1.31, ...) and grows afterwards."""
    x = np.ones((4, 1), "float32")
    return x, 2.0 * x, (x, 1.0 * x)


def _fresh_model():
    model = _tiny_model()
    model.set_weights([np.zeros((1, 1), "float32")])
    return model


@pytest.mark.smoke
def test_fit_stops_on_patience_and_restores_best():
    x, y, validation = _data()
    model = _fresh_model()
    callback = EarlyStopping(patience=3)
    history = model.fit(
        x,
        y,
        validation_data=validation,
        epochs=20,
        batch_size=4,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    assert len(history.history["loss"]) == 5
    assert (callback.stop_reason, callback.stopped_epoch, callback.restored_epoch) == (
        "patience",
        4,
        1,
    )
    # kernel after epoch 1 of k <- k + 0.3 (2 - k), computed in float64: two float32
    # steps of ~4 roundings each at the scale 2 of the target
    tolerance.assert_close(model.get_weights()[0][0, 0], 2 * (1 - 0.7**2), 8, scale=2)


def test_one_instance_serves_two_fits():
    x, y, validation = _data()
    model = _fresh_model()
    callback = EarlyStopping(monitor="loss", patience=10, divergence_threshold=100.0)
    model.fit(x, 1000.0 * y, epochs=5, verbose=0, callbacks=[callback])
    assert (callback.stop_reason, callback.stopped_epoch) == ("divergence_threshold", 0)
    model.set_weights([np.zeros((1, 1), "float32")])
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 3
    assert callback.stop_reason is None
    assert callback.restored_epoch == 2 and callback.wait == 0


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_resume_with_backup_and_restore(tmp_path):
    x, y, validation = _data()
    backup = str(tmp_path / "backup")
    fit = dict(
        validation_data=validation, epochs=20, batch_size=4, shuffle=False, verbose=0
    )

    model = _fresh_model()
    first = EarlyStopping(patience=3, backup_dir=backup)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            callbacks=[_Interrupt(3), keras.callbacks.BackupAndRestore(backup), first],
            **fit,
        )
    assert os.path.exists(first.state_path)

    model = _fresh_model()  # as a restarted process would
    second = EarlyStopping(patience=3, backup_dir=backup)
    history = model.fit(
        x, y, callbacks=[keras.callbacks.BackupAndRestore(backup), second], **fit
    )
    assert len(history.history["loss"]) == 2  # epochs 3 and 4
    assert (second.stop_reason, second.stopped_epoch, second.best_epoch) == (
        "patience",
        4,
        1,
    )
    assert second.restored_epoch == 1
    tolerance.assert_close(model.get_weights()[0][0, 0], 2 * (1 - 0.7**2), 8, scale=2)
    assert not os.path.exists(backup)


def test_stale_state_is_ignored_with_a_warning(tmp_path):
    x, y, validation = _data()
    backup = str(tmp_path / "backup")
    model = _fresh_model()
    callback = EarlyStopping(patience=3, backup_dir=backup)
    with pytest.raises(RuntimeError):
        model.fit(
            x,
            y,
            validation_data=validation,
            epochs=20,
            verbose=0,
            callbacks=[_Interrupt(2), callback],
        )
    fresh = EarlyStopping(patience=3, backup_dir=backup)
    model = _fresh_model()
    with pytest.warns(
        UserWarning,
        match=r"saved state .* is for epoch 2, training resumes at "
        r"epoch 0; starting from a fresh state",
    ):
        model.fit(
            x, y, validation_data=validation, epochs=1, verbose=0, callbacks=[fresh]
        )


@pytest.mark.smoke
def test_docstring_examples():
    import doctest

    from keras_trainplus.callbacks import early_stopping
    from keras_trainplus.callbacks import freeze_unfreeze

    for module in (early_stopping, freeze_unfreeze):
        result = doctest.testmod(module, verbose=False)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# ---------------------------------------------------------------- checks


@pytest.mark.parametrize(
    "mode, stopping, divergence, better, worse",
    [
        ("min", 5.0, 1.0, "<", ">"),
        ("min", 2.0, 2.0, "<", ">"),
        ("max", 0.5, 0.9, ">", "<"),
    ],
)
def test_contradictory_thresholds_are_rejected(
    mode, stopping, divergence, better, worse
):
    message = (
        r"Arguments `stopping_threshold` and `divergence_threshold` contradict each "
        rf"other in mode='{mode}': training stops when the value is {better} "
        rf"stopping_threshold \(good enough\) and when it is {worse} "
        r"divergence_threshold \(diverged\), so stopping_threshold must be "
        rf"{better} divergence_threshold\. Received: stopping_threshold={stopping}, "
        rf"divergence_threshold={divergence}"
    )
    with pytest.raises(ValueError, match=message):
        EarlyStopping(
            mode=mode, stopping_threshold=stopping, divergence_threshold=divergence
        )


def test_contradictory_thresholds_in_auto_mode_fail_when_the_direction_is_known():
    callback = EarlyStopping(stopping_threshold=5.0, divergence_threshold=1.0)
    with pytest.raises(ValueError, match=r"contradict each other in mode='min'"):
        _drive(callback, [3.0])
    # Consistent ones pass.
    last, _ = _drive(
        EarlyStopping(stopping_threshold=1.0, divergence_threshold=5.0), [3.0, 0.5]
    )
    assert last == 1


@pytest.mark.smoke
def test_unknown_monitor_in_auto_mode_fails_after_the_first_epoch():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.ones((4, 1), "float32"), np.zeros((4,), "int32")
    counter = EpochCounter()
    with pytest.raises(
        ValueError,
        match=r"EarlyStopping cannot tell whether `val_acuracy` should be minimized "
        r"or maximized: it is neither a loss nor a metric of the model \(logged now: "
        r"accuracy, loss, val_accuracy, val_loss\)\. Check the name, or pass "
        r"mode='min' or mode='max'\.",
    ):
        model.fit(
            x,
            y,
            validation_data=(x, y),
            epochs=5,
            verbose=0,
            callbacks=[counter, EarlyStopping(monitor="val_acuracy")],
        )
    assert counter.epochs == [0]
    # A metric of the model is resolved, as in Keras.
    callback = EarlyStopping(monitor="val_accuracy", patience=5)
    model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0, callbacks=[callback])
    assert callback.monitor_op is keras.ops.greater


def test_backup_dir_accepts_a_path_and_stores_a_string(tmp_path):
    callback = EarlyStopping(backup_dir=tmp_path / "backup")
    assert callback.backup_dir == str(tmp_path / "backup")
    config = callback.get_config()
    assert config["backup_dir"] == str(tmp_path / "backup")
    json.dumps(config)
    assert_config_roundtrip(callback)
    assert isinstance(EarlyStopping(backup_dir=pathlib.PurePath("b")).backup_dir, str)


def test_unusable_backup_dir_fails_when_training_begins(tmp_path):
    x, y, validation = _data()
    target = tmp_path / "file"
    target.write_text("x")
    assert_rejected_before_training(
        lambda callbacks: _fresh_model().fit(
            x,
            y,
            validation_data=validation,
            epochs=3,
            verbose=0,
            callbacks=[*callbacks, EarlyStopping(backup_dir=target)],
        ),
        "backup_dir",
        target,
        "it is an existing file",
    )


@pytest.mark.parametrize("save_freq", ["epoch", 1])
def test_resume_from_a_mid_epoch_backup_warns(tmp_path, save_freq):
    # Two steps per epoch; interrupted after the first step of epoch 3.
    x, y, validation = _data()
    backup = str(tmp_path / "backup")
    fit = dict(
        validation_data=validation, epochs=8, batch_size=2, shuffle=False, verbose=0
    )

    def callbacks():
        return [
            keras.callbacks.BackupAndRestore(backup, save_freq=save_freq),
            EarlyStopping(patience=6, backup_dir=backup),
        ]

    assert_mid_epoch_resume_warns(
        lambda extra: _fresh_model().fit(x, y, callbacks=[*callbacks(), *extra], **fit),
        Interrupt(3, 0),
        save_freq,
        "EarlyStopping: training resumes at the start of epoch 3 with the "
        "optimizer at step 7, where an epoch boundary implies step 6",
    )
