"""Ranger against a float64 reference: RAdam + gradient centralization + LookAhead."""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers import config as config_helpers
from tests.helpers import optim
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.backend import function_modes
from tests.test_lookahead import lookahead_rule
from tests.test_radam import radam_rule


def centralized(grads, min_rank=2):
    """Yong et al. 2020: subtract the mean over all axes but the output (last) one."""
    return [
        g - g.mean(axis=tuple(range(g.ndim - 1)), keepdims=True)
        if g.ndim >= min_rank
        else g
        for g in grads
    ]


def ranger_rule(problem, lr, b1, b2, eps, sync_period, slow_step_size):
    radam = radam_rule(lr=lr, b1=b1, b2=b2, eps=eps)

    def inner(t, params, grads, state):
        return radam(t, params, centralized(grads), state)

    return lookahead_rule(inner, problem.initial, sync_period, slow_step_size)


@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize(
    "problem", [optim.Quadratic(), optim.TinyMLP()], ids=["quadratic", "mlp"]
)
def test_trajectory_matches_float64_reference(problem, mode):
    steps = 120
    kwargs = dict(learning_rate=0.01, beta_1=0.95, beta_2=0.99, epsilon=1e-5)
    optimizer = ktp.optimizers.Ranger(**kwargs, sync_period=6, slow_step_size=0.5)
    got = optim.keras_trajectory(optimizer, problem, steps, mode)
    rule = ranger_rule(problem, 0.01, 0.95, 0.99, 1e-5, 6, 0.5)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(rule, problem, steps)
    )


@pytest.mark.parametrize("mode", function_modes())
def test_without_gc_equals_lookahead_of_radam(mode):
    problem = optim.TinyMLP()
    kwargs = dict(learning_rate=0.02, beta_1=0.9, beta_2=0.99, epsilon=1e-6)
    ranger = ktp.optimizers.Ranger(
        **kwargs, sync_period=4, slow_step_size=0.6, use_gc=False
    )
    lookahead = ktp.optimizers.LookAhead(ktp.optimizers.RAdam(**kwargs), 4, 0.6)
    # Bit for bit on any CPU: Ranger is LookAhead with an inner RAdam, and without
    # gradient centralization it hands the gradients through untouched, so both run
    # the same operations in the same order on the same inputs.
    optim.assert_trajectories_equal(
        optim.keras_trajectory(ranger, problem, 100, mode),
        optim.keras_trajectory(lookahead, problem, 100, mode),
    )


@pytest.mark.smoke
@pytest.mark.parametrize("gc_conv_only", [False, True])
def test_first_step_moves_by_the_centralized_gradient(gc_conv_only, rng):
    """Step 1 is RAdam's momentum step, lr * g: it exposes the centralized gradient."""
    shapes = [(2, 2, 3, 4), (3, 4), (4,)]
    variables = [keras.Variable(np.zeros(s, "float32")) for s in shapes]
    grads = [rng.normal(size=s).astype("float32") for s in shapes]
    optimizer = ktp.optimizers.Ranger(0.1, gc_conv_only=gc_conv_only)
    optimizer.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    want = centralized(
        [g.astype(np.float64) for g in grads], min_rank=4 if gc_conv_only else 2
    )
    # Centralizing is a mean of up to 12 terms and a subtraction (13 units at the
    # gradient's scale, which the result may be far below); RAdam's first step
    # lr (1 - beta_1) g / (1 - beta_1) rounds ~6 more times.
    for variable, w, g in zip(variables, want, grads):
        got = keras.ops.convert_to_numpy(variable)
        tolerance.assert_close(got, -0.1 * w, 13 + 6, scale=0.1 * g)


def test_state_is_three_slots_per_parameter():
    variables = [
        keras.Variable(np.zeros((3, 4), "float32")),
        keras.Variable(np.zeros(5, "float32")),
    ]
    optimizer = ktp.optimizers.Ranger()
    optimizer.build(variables)
    sizes = [int(np.prod(v.shape)) for v in optimizer.variables if len(v.shape) > 0]
    assert sum(sizes) == 3 * 17 + 2  # + one "started" flag per variable


@pytest.mark.smoke
def test_config_roundtrip_and_deserialize():
    optimizer = ktp.optimizers.Ranger(
        2e-3,
        beta_1=0.9,
        epsilon=0.0,
        sync_period=4,
        use_gc=False,
        gc_conv_only=True,
        global_clipnorm=1.0,
    )
    restored = config_helpers.assert_config_roundtrip(optimizer)
    assert restored.optimizer.epsilon == 0.0 and restored.sync_period == 4
    assert restored.use_gc is False and restored.gc_conv_only is True
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, ktp.optimizers.Ranger) and again.optimizer.beta_1 == 0.9
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, 100)
    config_helpers.assert_config_roundtrip(ktp.optimizers.Ranger(schedule))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(learning_rate=-1e-3),
            r"Argument `learning_rate` must be >= 0\. Received: learning_rate=-0\.001",
        ),
        (
            dict(beta_1=1.2),
            r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1\.2",
        ),
        (
            dict(beta_2=1.0),
            r"Argument `beta_2` must be in \[0, 1\)\. Received: beta_2=1\.0",
        ),
        (
            dict(epsilon=-1.0),
            r"Argument `epsilon` must be >= 0\. Received: epsilon=-1\.0",
        ),
        (
            dict(sync_period=0),
            r"Argument `sync_period` must be an integer >= 1\. Received: sync_period=0",
        ),
        (
            dict(slow_step_size=2.0),
            r"Argument `slow_step_size` must be in \[0, 1\]\. Received: slow_step_size=2\.0",
        ),
        (
            dict(use_gc="yes"),
            r"Argument `use_gc` must be a bool\. Received: use_gc='yes'",
        ),
        (
            dict(gc_conv_only=1),
            r"Argument `gc_conv_only` must be a bool\. Received: gc_conv_only=1",
        ),
        (dict(k=6), r"Argument\(s\) not recognized: \{'k': 6\}"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ktp.optimizers.Ranger(**kwargs)


class OneHotEmbedding(keras.layers.Layer):
    """`Embedding` computed as one_hot(ids) @ table: the same values, dense gradient."""

    def __init__(self, rows, width, **kwargs):
        super().__init__(**kwargs)
        self.rows = rows
        self.table = self.add_weight((rows, width), initializer="uniform", name="t")

    def call(self, ids):
        return keras.ops.matmul(keras.ops.one_hot(ids, self.rows), self.table)


def _embedding_model(layer):
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )


@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
def test_fit_with_sparse_embedding_gradients_equals_dense(mode, compile_kwargs, rng):
    """TensorFlow's `Embedding` gradient is `IndexedSlices`: centralized exactly."""
    ids = rng.integers(0, 10, size=(16, 4)).astype("int32")
    ids[:, 1] = ids[:, 0]  # repeated rows within a batch
    y = rng.normal(size=(16, 1)).astype("float32")
    sparse = _embedding_model(keras.layers.Embedding(12, 3))
    dense = _embedding_model(OneHotEmbedding(12, 3))
    dense.set_weights(sparse.get_weights())
    start = sparse.get_weights()
    for model in (sparse, dense):
        model.compile(
            ktp.optimizers.Ranger(0.05, sync_period=2), "mse", **compile_kwargs
        )
        model.fit(ids, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(sparse.get_weights(), dense.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Rows 10 and 11 never appear: only the centralization moves them.
    assert not np.allclose(sparse.get_weights()[0][10:], start[0][10:])
