"""Stochastic Weight Averaging and BatchNormalization re-calibration."""

import json
import os

import keras
import numpy as np
import pytest

from keras_trainplus.callbacks import StochasticWeightAveraging
from keras_trainplus.callbacks import recalibrate_batch_norm
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.callbacks import Interrupt
from tests.helpers.callbacks import assert_mid_epoch_resume_warns
from tests.helpers.callbacks import assert_rejected_before_training
from tests.helpers.config import assert_config_roundtrip


class EpochWeights(keras.callbacks.Callback):
    """Records the trainable weights at the end of every epoch, in float64."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(
            [
                keras.ops.convert_to_numpy(v).astype(np.float64)
                for v in self.model.trainable_variables
            ]
        )


def regression_data(rng, n=48):
    x = rng.normal(size=(n, 4)).astype("float32")
    y = np.sin(x @ rng.normal(size=(4, 2))).astype("float32")
    return x, y


def bn_model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2),
        ]
    )


def numpy_bn_statistics(model, x, batch_size):
    """Batch-size-weighted average of each BN layer's batch statistics, in float64.

    Forward pass in training mode written out in NumPy for the `bn_model` layout.
    """
    w1, b1, g1, be1, _, _, w2, b2, g2, _, _, _, _, _ = [
        w.astype(np.float64) for w in model.get_weights()
    ]
    eps = model.layers[1].epsilon
    sums = np.zeros(5), np.zeros(5), np.zeros(3), np.zeros(3)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].astype(np.float64)
        h1 = xb @ w1 + b1
        m1, v1 = h1.mean(axis=0), h1.var(axis=0)
        a1 = np.maximum(g1 * (h1 - m1) / np.sqrt(v1 + eps) + be1, 0.0)
        h2 = a1 @ w2 + b2
        m2, v2 = h2.mean(axis=0), h2.var(axis=0)
        sums = tuple(s + len(xb) * v for s, v in zip(sums, (m1, v1, m2, v2)))
    return [s / len(x) for s in sums]


def assert_bn_statistics_close(got, want, batch_size):
    """Float32 batch moments against their float64 values: mean and variance of
    one BN layer, or of `bn_model`'s two (the second reading the first).

    A layer's batch mean rounds (fan-in <= 5) + batch_size times at the scale of
    its activations h; Keras's variance `E[h^2] - E[h]^2` as many times at the scale
    of E[h^2], which exceeds the variance when the mean is large. The second layer
    reads activations normalised with the first layer's variance, whose relative
    error is E[h^2] / var times that: its moments carry that factor too.
    """
    m1, v1 = want[:2]
    ulps = 2 * (5 + batch_size)
    amplification = float(np.max((m1**2 + v1) / v1))
    for i, (g, w) in enumerate(zip(got, want)):
        mean, variance = want[i - i % 2], want[i - i % 2 + 1]
        scale = mean**2 + variance if i % 2 else np.sqrt(mean**2 + variance)
        factor = amplification if i >= 2 else 1.0
        tolerance.assert_close(g, w, ulps * factor, scale=scale, err_msg=f"stat {i}")


def bn_statistics(model):
    return [
        keras.ops.convert_to_numpy(v)
        for layer in (model.layers[1], model.layers[4])
        for v in (layer.moving_mean, layer.moving_variance)
    ]


@pytest.mark.smoke
@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
def test_weights_are_mean_of_epoch_weights_from_start_epoch(rng, mode, compile_kwargs):
    x, y = regression_data(rng)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="tanh"),
            keras.layers.Dense(2),
        ]
    )
    model.compile(keras.optimizers.SGD(0.2, momentum=0.5), "mse", **compile_kwargs)
    recorder = EpochWeights()
    swa = StochasticWeightAveraging(start_epoch=3)
    model.fit(x, y, batch_size=12, epochs=7, verbose=0, callbacks=[recorder, swa])

    assert swa.averaged_epochs == 4
    expected = [
        np.mean([epoch[i] for epoch in recorder.weights[3:]], axis=0) for i in range(4)
    ]
    # `a + (w - a) / n`: 3 roundings per averaged epoch at the weights' scale.
    ulps = 3 * swa.averaged_epochs
    for got, want in zip(model.get_weights(), expected):
        tolerance.assert_close(got, want, ulps)
    # The average differs from the last iterate by more than the bound (the test can
    # tell them apart).
    distance = np.abs(recorder.weights[-1][0] - expected[0]).max()
    assert distance > tolerance.float32_bound(ulps, expected[0])


def mean_prediction(y_true, y_pred):
    return keras.ops.mean(y_pred)


def test_swa_learning_rate_from_start_epoch():
    # y = w x with x = 1 and loss mean(y): SGD moves w by exactly -lr per step.
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), loss=mean_prediction)
    steps = []

    class StepWeights(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(float(self.model.get_weights()[0][0, 0]))

    swa = StochasticWeightAveraging(start_epoch=2, swa_learning_rate=0.02)
    x = np.ones((4, 1), "float32")
    model.fit(
        x,
        x,
        batch_size=2,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[swa, StepWeights()],
    )

    rates = -np.diff([0.0] + steps)
    # Each weight rounds once at the weights' scale; a rate is a difference of two.
    tolerance.assert_close(rates, [0.1] * 4 + [0.02] * 4, 2, scale=steps)
    # Average of the weights after epochs 2 and 3 (steps 6 and 8): a + (w - a) / 2.
    tolerance.assert_close(model.get_weights()[0][0, 0], (steps[5] + steps[7]) / 2, 3)
    # The rate given back is the float32 number the optimizer held, exactly.
    assert float(model.optimizer.learning_rate) == np.float32(0.1)


@pytest.mark.smoke
@pytest.mark.parametrize("batch_size", [16, 50])
def test_recalibrate_batch_norm_matches_numpy(rng, batch_size):
    x = rng.normal(loc=1.5, scale=2.0, size=(50, 4)).astype("float32")
    model = bn_model()
    model.set_weights(
        [
            w + rng.normal(scale=0.3, size=w.shape).astype("float32")
            for w in model.get_weights()
        ]
    )
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_variables]

    used = recalibrate_batch_norm(model, x, batch_size=batch_size)

    assert used == -(-50 // batch_size)
    expected = numpy_bn_statistics(model, x, batch_size)
    assert_bn_statistics_close(bn_statistics(model), expected, batch_size)
    for got, want in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)
    assert model.layers[1].momentum == 0.99 and model.layers[4].momentum == 0.99


def test_recalibrate_from_dataset_with_steps(rng):
    import tensorflow as tf

    x = rng.normal(size=(40, 4)).astype("float32")
    y = np.zeros((40, 2), "float32")
    model = bn_model()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    assert recalibrate_batch_norm(model, dataset, steps=3) == 3
    expected = numpy_bn_statistics(model, x[:30], 10)
    assert_bn_statistics_close(bn_statistics(model), expected, 10)


@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
def test_swa_recalibrates_batch_norm_at_the_end(rng, mode, compile_kwargs):
    x, y = regression_data(rng)
    model = bn_model()
    model.compile(keras.optimizers.SGD(0.05), "mse", **compile_kwargs)
    recorder = EpochWeights()
    swa = StochasticWeightAveraging(start_epoch=2, recalibration_data=x, batch_size=16)
    model.fit(x, y, batch_size=12, epochs=5, verbose=0, callbacks=[recorder, swa])

    expected_weights = [
        np.mean([e[i] for e in recorder.weights[2:]], axis=0) for i in range(10)
    ]
    for got, want in zip(model.trainable_variables, expected_weights):
        got = keras.ops.convert_to_numpy(got)
        tolerance.assert_close(got, want, 3 * swa.averaged_epochs)
    expected = numpy_bn_statistics(model, x, 16)
    assert_bn_statistics_close(bn_statistics(model), expected, 16)


def test_warns_without_recalibration_data(rng):
    x, y = regression_data(rng, 16)
    model = bn_model()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    with pytest.warns(UserWarning, match="pass `recalibration_data`"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[StochasticWeightAveraging(1)])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"start_epoch": -1},
            r"Argument `start_epoch` must be an integer >= 0. Received: start_epoch=-1",
        ),
        (
            {"start_epoch": 1, "swa_learning_rate": -0.1},
            r"Argument `swa_learning_rate` must be >= 0.0",
        ),
        (
            {"start_epoch": 1, "recalibration_steps": 0},
            r"Argument `recalibration_steps` must be an integer >= 1",
        ),
        (
            {"start_epoch": 1, "batch_size": 0},
            r"Argument `batch_size` must be an integer >= 1",
        ),
        (
            {"start_epoch": 1, "backup_dir": ""},
            r"Argument `backup_dir` must be a non-empty path \(str or pathlib.Path\) or None",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StochasticWeightAveraging(**kwargs)


def test_errors_at_fit(rng):
    x, y = regression_data(rng, 8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    with pytest.raises(
        ValueError, match=r"`start_epoch` must be < epochs \(3\).*start_epoch=3"
    ):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[StochasticWeightAveraging(3)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model.compile(keras.optimizers.SGD(schedule), "mse")
    with pytest.raises(
        ValueError, match="`swa_learning_rate` needs an optimizer built with a float"
    ):
        model.fit(
            x, y, epochs=3, verbose=0, callbacks=[StochasticWeightAveraging(1, 0.01)]
        )
    with pytest.raises(ValueError, match="data` yielded no batch"):
        recalibrate_batch_norm(bn_model(), [])
    with pytest.raises(ValueError, match=r"Argument `steps` must be an integer >= 1"):
        recalibrate_batch_norm(bn_model(), x, steps=0)


def test_config_roundtrip():
    assert_config_roundtrip(
        StochasticWeightAveraging(
            2,
            swa_learning_rate=0.01,
            recalibration_steps=5,
            batch_size=8,
            backup_dir="swa",
        )
    )


def test_resume_with_backup_and_restore(tmp_path, rng):
    # 7 epochs, averaging from epoch 2; the first run dies inside epoch 4, after the
    # average of epochs 2 and 3 was saved. The resumed run re-does epoch 4.
    x, y = regression_data(rng)
    backup, swa_backup = str(tmp_path / "backup"), tmp_path / "swa"

    def make():
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(6, activation="tanh"),
                keras.layers.Dense(2),
            ]
        )
        model.compile(keras.optimizers.SGD(0.2), "mse")
        return model

    first = EpochWeights()
    with pytest.raises(RuntimeError, match="simulated"):
        make().fit(
            x,
            y,
            batch_size=12,
            epochs=7,
            shuffle=False,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup),
                first,
                StochasticWeightAveraging(2, 0.1, backup_dir=swa_backup),
                Interrupt(4, 1),
            ],
        )
    assert len(first.weights) == 4
    assert sorted(os.listdir(swa_backup)) == [
        "swa-state-00003.npz",
        "swa-state-00004.npz",
    ]

    model, second = make(), EpochWeights()
    swa = StochasticWeightAveraging(2, 0.1, backup_dir=swa_backup)
    model.fit(
        x,
        y,
        batch_size=12,
        epochs=7,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup), second, swa],
    )
    assert len(second.weights) == 3 and swa.averaged_epochs == 5
    epochs = first.weights[2:] + second.weights  # epochs 2..6, each once
    for i, got in enumerate(model.get_weights()):
        want = np.mean([e[i] for e in epochs], axis=0)
        tolerance.assert_close(got, want, 3 * swa.averaged_epochs)
    assert os.listdir(swa_backup) == []
    # The restored checkpoint held the SWA rate; the original one is given back.
    assert float(model.optimizer.learning_rate) == np.float32(0.2)


class Block(keras.layers.Layer):
    """A custom layer holding Dense + BatchNormalization (not in `model.layers`)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)
        self.norm = keras.layers.BatchNormalization()

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.norm.build((*input_shape[:-1], self.dense.units))

    def call(self, inputs, training=None):
        return self.norm(self.dense(inputs), training=training)


def nested_bn_model(functional):
    if functional:
        inputs = keras.Input((4,))
        hidden = keras.layers.ReLU()(Block(5)(inputs))
        return keras.Model(inputs, keras.layers.Dense(2)(hidden))
    return keras.Sequential([keras.Input((4,)), Block(5), keras.layers.ReLU()])


@pytest.mark.smoke
@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_recalibrate_finds_batch_norm_inside_custom_layers(rng, functional):
    x = rng.normal(loc=1.5, scale=2.0, size=(40, 4)).astype("float32")
    model = nested_bn_model(functional)
    block = next(layer for layer in model.layers if isinstance(layer, Block))
    block.dense.set_weights(
        [rng.normal(size=(4, 5)).astype("float32"), np.zeros(5, "float32")]
    )

    assert recalibrate_batch_norm(model, x, batch_size=16) == 3

    kernel, bias = (w.astype(np.float64) for w in block.dense.get_weights())
    means, variances = [], []
    for start in range(0, 40, 16):
        h = x[start : start + 16].astype(np.float64) @ kernel + bias
        means.append(len(h) * h.mean(axis=0))
        variances.append(len(h) * h.var(axis=0))
    # One BN layer (fan-in 4): the first layer's bounds of `bn_model`.
    got = [block.norm.moving_mean, block.norm.moving_variance]
    assert_bn_statistics_close(
        [keras.ops.convert_to_numpy(v) for v in got],
        [np.sum(means, axis=0) / 40, np.sum(variances, axis=0) / 40],
        batch_size=16,
    )


def test_swa_warns_about_batch_norm_inside_custom_layers(rng):
    x, y = regression_data(rng, 16)
    model = nested_bn_model(functional=True)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    with pytest.warns(UserWarning, match="pass `recalibration_data`"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[StochasticWeightAveraging(1)])


def test_backup_dir_accepts_a_path_and_stores_a_string(tmp_path):
    swa = StochasticWeightAveraging(1, backup_dir=tmp_path / "swa")
    config = swa.get_config()
    assert config["backup_dir"] == str(tmp_path / "swa")
    json.dumps(config)
    assert_config_roundtrip(swa)


def test_unusable_backup_dir_fails_when_training_begins(tmp_path, rng):
    x, y = regression_data(rng, 8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    target = tmp_path / "file"
    target.write_text("x")
    assert_rejected_before_training(
        lambda callbacks: model.fit(
            x,
            y,
            epochs=3,
            verbose=0,
            callbacks=[*callbacks, StochasticWeightAveraging(1, backup_dir=target)],
        ),
        "backup_dir",
        target,
        "it is an existing file",
    )


@pytest.mark.parametrize("save_freq", ["epoch", 1])
def test_resume_from_a_mid_epoch_backup_warns(tmp_path, rng, save_freq):
    # 4 steps per epoch, averaging from epoch 1; interrupted after batch 1 of epoch 3
    # (step 14): with a backup every step, Keras resumes at epoch 3 from step 14.
    x, y = regression_data(rng)
    backup, swa_backup = str(tmp_path / "backup"), tmp_path / "swa"

    def run(callbacks):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        model.fit(
            x,
            y,
            batch_size=12,
            epochs=5,
            shuffle=False,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup, save_freq=save_freq),
                StochasticWeightAveraging(1, backup_dir=swa_backup),
                *callbacks,
            ],
        )

    assert_mid_epoch_resume_warns(
        run,
        Interrupt(3, 1),
        save_freq,
        "StochasticWeightAveraging: training resumes at the start of epoch 3 with "
        "the optimizer at step 14, where an epoch boundary implies step 12",
    )
