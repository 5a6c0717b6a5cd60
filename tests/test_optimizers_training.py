"""The four optimizers inside `model.fit`: compiled training, mixed precision,
data-parallel training and save/resume."""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.backend import only_backends

OPTIMIZERS = {
    "nesterov": lambda: ktp.optimizers.Nesterov(
        0.05, initial_momentum=0.5, momentum_warmup_steps=4
    ),
    "radam": lambda: ktp.optimizers.RAdam(5e-3, beta_2=0.99),
    "lookahead": lambda: ktp.optimizers.LookAhead(
        keras.optimizers.Adam(5e-3), sync_period=3
    ),
    "ranger": lambda: ktp.optimizers.Ranger(5e-3, beta_2=0.99, sync_period=3),
}


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x[:, :4, :4, 0].mean(axis=(1, 2)) > x[:, 4:, 4:, 0].mean(axis=(1, 2))).astype(
        "int32"
    )
    return x, y


def _convnet():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )


def _dense_model(seed=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )


def _regression_data(n=32):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, np.sin(x.sum(axis=1, keepdims=True)).astype("float32")


def _two_runs_bound(name, weights, steps, fan_in=8 * 4):
    """How far two float32 runs of `steps` steps of `OPTIMIZERS[name]` (or of
    `WITH_BASE_KWARGS[name]`) on `_dense_model` may end apart (batches of 8 samples,
    4 inputs: ~32-term gradient sums). Nesterov steps like SGD; the others like Adam
    at lr 5e-3 (RAdam and Ranger with beta_2 = 0.99 where `OPTIMIZERS` sets it)."""
    if name == "nesterov":
        return 2 * tolerance.training_bound(weights, steps, fan_in)
    beta_2 = 0.999 if name == "lookahead" else 0.99
    return 2 * tolerance.training_bound(weights, steps, fan_in, 5e-3, beta_2)


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@pytest.mark.smoke
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fit_trains_a_convnet(name):
    """`jit_compile=True` on TensorFlow and JAX; eager on PyTorch (its only mode)."""
    compile_kwargs = compile_modes()[-1][1]
    x, y = _images()
    model = _convnet()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=OPTIMIZERS[name](), loss=loss, **compile_kwargs)
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mixed_float16_training(name):
    keras.config.set_dtype_policy("mixed_float16")
    x, y = _images()
    model = _convnet()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=OPTIMIZERS[name](), loss=loss)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert all(np.all(np.isfinite(w)) for w in _weights(model))


def test_mixed_float16_non_finite_step_leaves_lookahead_untouched():
    keras.config.set_dtype_policy("mixed_float16")
    x, y = _images(16)
    model = _convnet()
    lookahead = ktp.optimizers.LookAhead(keras.optimizers.Adam(5e-3), sync_period=2)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=lookahead, loss=loss)
    model.train_on_batch(x, y)

    def state():
        return (
            _weights(model),
            [keras.ops.convert_to_numpy(s) for s in lookahead._slow_weights],
            int(keras.ops.convert_to_numpy(lookahead.optimizer.iterations)),
        )

    before = state()
    bad = x.copy()
    bad[0, 0, 0, 0] = np.inf
    model.train_on_batch(bad, y)
    after = state()
    assert after[2] == before[2] == 1
    for got, want in zip(after[0] + after[1], before[0] + before[1]):
        np.testing.assert_array_equal(got, want)
    model.train_on_batch(x, y)  # the second inner step syncs
    synced = state()
    assert synced[2] == 2
    for weight, slow in zip(model.trainable_weights, synced[1]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), slow)


def _fit_steps(model, optimizer, x, y, epochs=2):
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)
    return _weights(model)


@only_backends("tensorflow")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mirrored_strategy_matches_single_device(name):
    import tensorflow as tf

    x, y = _regression_data()
    single = _fit_steps(_dense_model(), OPTIMIZERS[name](), x, y)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = _fit_steps(_dense_model(), OPTIMIZERS[name](), x, y)
    for got, want in zip(mirrored, single):  # 2 epochs of 4 steps
        tolerance.assert_within(got, want, _two_runs_bound(name, want, 8))


@only_backends("jax")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jax_data_parallel_matches_single_device(name):
    import jax

    x, y = _regression_data()
    single = _fit_steps(_dense_model(), OPTIMIZERS[name](), x, y)
    devices = jax.devices("cpu")
    assert len(devices) >= 2
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices[:2])
    )
    try:
        parallel = _fit_steps(_dense_model(), OPTIMIZERS[name](), x, y)
    finally:
        keras.distribution.set_distribution(None)
    for got, want in zip(parallel, single):  # 2 epochs of 4 steps
        tolerance.assert_within(got, want, _two_runs_bound(name, want, 8))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_save_and_resume_equals_straight_training(name, tmp_path):
    x, y = _regression_data(
        40
    )  # 5 steps per epoch: syncs fall inside and across epochs
    straight = _fit_steps(_dense_model(), OPTIMIZERS[name](), x, y, epochs=3)

    model = _dense_model()
    _fit_steps(model, OPTIMIZERS[name](), x, y, epochs=1)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.optimizer) is type(model.optimizer)
    restored.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(_weights(restored), straight):  # 3 epochs of 5 steps
        tolerance.assert_within(got, want, _two_runs_bound(name, want, 15))


@pytest.mark.smoke
@pytest.mark.parametrize(
    "compile_id, compile_kwargs", compile_modes(), ids=[m[0] for m in compile_modes()]
)
def test_fit_initialises_slow_weights_from_the_model(compile_id, compile_kwargs):
    """TensorFlow builds the optimizer while tracing `fit`'s step: phi must still be theta_0."""
    x, y = _regression_data(8)
    model = _dense_model()
    initial = _weights(model)
    lookahead = ktp.optimizers.LookAhead(keras.optimizers.SGD(0.1), sync_period=2)
    model.compile(optimizer=lookahead, loss="mse", **compile_kwargs)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for slow, want in zip(lookahead._slow_weights, initial):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slow), want)


WRAPPERS = {
    "lookahead": lambda: ktp.optimizers.LookAhead(
        keras.optimizers.Adam(0.01), sync_period=2
    ),
    "ranger": lambda: ktp.optimizers.Ranger(0.01, sync_period=2),
}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
@pytest.mark.parametrize(
    "compile_id, compile_kwargs", compile_modes(), ids=[m[0] for m in compile_modes()]
)
def test_fit_with_variables_over_128_elements(name, compile_id, compile_kwargs):
    """TensorFlow XLA could not lift slow weights created from the model's values."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 2, size=32)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    initial = _weights(model)
    optimizer = WRAPPERS[name]()
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 2 steps: one sync
    # Right after a sync the model holds phi = theta_0 + alpha (theta_2 - theta_0).
    for slow, weight, start in zip(optimizer._slow_weights, _weights(model), initial):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slow), weight)
        assert not np.array_equal(weight, start)


@pytest.mark.parametrize("name", sorted(WRAPPERS))
@pytest.mark.parametrize(
    "compile_id, compile_kwargs", compile_modes(), ids=[m[0] for m in compile_modes()]
)
def test_fit_a_model_whose_weights_the_first_step_creates(
    name, compile_id, compile_kwargs
):
    """Sequential without `Input`: the weights are created inside the first step."""
    x, y = _regression_data(16)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)]
    )
    optimizer = WRAPPERS[name]()
    model.compile(optimizer, "mse", **compile_kwargs)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # one step, no sync yet
    keras.utils.set_random_seed(3)
    reference = keras.Sequential(
        [keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)]
    )
    reference.build((None, 4))
    for slow, want in zip(optimizer._slow_weights, _weights(reference)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slow), want)


BASE_KWARGS = dict(gradient_accumulation_steps=2, clipnorm=1.0, weight_decay=1e-3)
WITH_BASE_KWARGS = {
    "nesterov": lambda: ktp.optimizers.Nesterov(0.05, **BASE_KWARGS),
    "radam": lambda: ktp.optimizers.RAdam(5e-3, **BASE_KWARGS),
    "lookahead": lambda: ktp.optimizers.LookAhead(
        keras.optimizers.Adam(5e-3), 2, **BASE_KWARGS
    ),
    "ranger": lambda: ktp.optimizers.Ranger(5e-3, sync_period=2, **BASE_KWARGS),
}


@pytest.mark.parametrize("name", sorted(WITH_BASE_KWARGS))
def test_base_arguments_accumulate_clip_and_decay(name):
    """Two accumulated micro-batches of 8 make the same step as one batch of 16."""
    x, y = _regression_data(16)
    optimizer = WITH_BASE_KWARGS[name]()
    accumulated = _dense_model()
    accumulated.compile(optimizer=optimizer, loss="mse")
    accumulated.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 3
    reference_kwargs = {
        k: v for k, v in BASE_KWARGS.items() if k != "gradient_accumulation_steps"
    }
    make = {
        "nesterov": lambda: ktp.optimizers.Nesterov(0.05, **reference_kwargs),
        "radam": lambda: ktp.optimizers.RAdam(5e-3, **reference_kwargs),
        "lookahead": lambda: ktp.optimizers.LookAhead(
            keras.optimizers.Adam(5e-3), 2, **reference_kwargs
        ),
        "ranger": lambda: ktp.optimizers.Ranger(
            5e-3, sync_period=2, **reference_kwargs
        ),
    }[name]
    whole = _dense_model()
    whole.compile(optimizer=make(), loss="mse")
    whole.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for got, want in zip(_weights(accumulated), _weights(whole)):  # 3 steps of 16
        tolerance.assert_within(got, want, _two_runs_bound(name, want, 3, 16 * 4))
