"""LookAhead against a float64 reference of Zhang et al. 2019, Algorithm 1."""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers import config as config_helpers
from tests.helpers import optim
from tests.helpers.backend import function_modes
from tests.helpers.backend import only_backends


def keras_adam_rule(lr, b1=0.9, b2=0.999, eps=1e-7):
    """Keras's Adam in float64 (it raises the float32-rounded betas to the power t)."""

    def update(t, params, grads, state):
        b1_power, b2_power = (float(np.float32(b)) ** t for b in (b1, b2))
        m, v = state or ([np.zeros_like(p) for p in params],) * 2
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        alpha = lr * np.sqrt(1 - b2_power) / (1 - b1_power)
        params = [
            p - alpha * mi / (np.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v)
        ]
        return params, (m, v)

    return update


def momentum_rule(lr, momentum):
    def update(t, params, grads, velocity):
        velocity = velocity or [np.zeros_like(p) for p in params]
        velocity = [momentum * v - lr * g for v, g in zip(velocity, grads)]
        return [p + v for p, v in zip(params, velocity)], velocity

    return update


def lookahead_rule(inner_rule, initial, sync_period, slow_step_size):
    """Algorithm 1: k inner steps on theta, then phi += alpha (theta - phi); theta = phi."""

    def update(t, params, grads, state):
        inner_state, slow = state or (None, [np.array(p, np.float64) for p in initial])
        params, inner_state = inner_rule(t, params, grads, inner_state)
        if t % sync_period == 0:
            slow = [s + slow_step_size * (p - s) for s, p in zip(slow, params)]
            params = [np.array(s) for s in slow]
        return params, (inner_state, slow)

    return update


@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize(
    "problem, inner, rule, sync_period, slow_step_size",
    [
        (
            optim.Quadratic(),
            lambda: keras.optimizers.Adam(0.02),
            keras_adam_rule(0.02),
            5,
            0.5,
        ),
        (
            optim.TinyMLP(),
            lambda: keras.optimizers.Adam(0.01),
            keras_adam_rule(0.01),
            6,
            0.8,
        ),
        (
            optim.Quadratic(),
            lambda: keras.optimizers.SGD(0.05, momentum=0.9),
            momentum_rule(0.05, 0.9),
            4,
            0.3,
        ),
    ],
    ids=["quadratic-adam", "mlp-adam", "quadratic-momentum"],
)
def test_trajectory_matches_float64_reference(
    problem, inner, rule, sync_period, slow_step_size, mode
):
    steps = 120
    optimizer = ktp.optimizers.LookAhead(inner(), sync_period, slow_step_size)
    got = optim.keras_trajectory(optimizer, problem, steps, mode)
    reference = lookahead_rule(rule, problem.initial, sync_period, slow_step_size)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, steps)
    )


@pytest.mark.parametrize("mode", function_modes())
def test_sync_every_step_with_unit_slow_step_equals_inner(mode):
    problem = optim.TinyMLP()
    wrapped = ktp.optimizers.LookAhead(keras.optimizers.Adam(0.01), 1, 1.0)
    # Not bit for bit: a sync computes `phi + 1.0 * (theta - phi)`, which rounds. Both
    # must follow Adam's float64 trajectory to float32 precision.
    adam = optim.reference_trajectory(keras_adam_rule(0.01), problem, 100)
    got = optim.keras_trajectory(wrapped, problem, 100, mode)
    want = optim.keras_trajectory(keras.optimizers.Adam(0.01), problem, 100, mode)
    optim.assert_trajectories_close(got, adam)
    optim.assert_trajectories_close(want, adam)


def test_zero_slow_step_returns_to_initial_weights_at_each_sync():
    problem = optim.Quadratic()
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(0.05), 3, 0.0)
    trajectory = optim.keras_trajectory(optimizer, problem, 30)
    for t, params in enumerate(trajectory, start=1):
        moved = any(
            not np.array_equal(p, np.float32(q))
            for p, q in zip(params, problem.initial)
        )
        assert moved == (t % 3 != 0), t


def test_state_is_one_slot_per_parameter_plus_inner():
    variables = [
        keras.Variable(np.zeros((3, 4), "float32")),
        keras.Variable(np.zeros(5, "float32")),
    ]
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.Adam())
    optimizer.build(variables)
    sizes = [int(np.prod(v.shape)) for v in optimizer.variables if len(v.shape) > 0]
    # Adam's m and v, the slow weights, and one "started" flag per variable.
    assert sum(sizes) == 3 * 17 + 2
    inner = optimizer.optimizer.variables
    assert [id(v) for v in optimizer.variables[-len(inner) :]] == [id(v) for v in inner]


def test_slow_weights_start_from_the_values_at_the_first_step():
    """phi is theta as training starts, not as it was when the optimizer was built."""
    variable = keras.Variable(np.full(3, 2.0, "float32"))
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(1.0), 2, 0.5)
    optimizer.build([variable])
    variable.assign(np.full(3, 5.0, "float32"))  # e.g. `load_weights` after compile
    for _ in range(2):
        optimizer.apply([keras.ops.ones(3)], [variable])
    # theta after 2 SGD steps: 5 - 2 = 3; phi = 5 + 0.5 (3 - 5) = 4. Exact on any
    # CPU: every operand and result is a float32 number, so nothing rounds.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), 4.0)


@pytest.mark.parametrize("mode", [m for m in function_modes() if m != "jit"])
def test_a_variable_stepped_later_starts_its_slow_weights_then(mode):
    """A variable without gradient at first (frozen) gets phi = theta at its first step."""
    first = keras.Variable(np.zeros(2, "float32"))
    later = keras.Variable(np.full(2, 7.0, "float32"))
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(1.0), 2, 0.5)
    optimizer.build([first, later])
    ones = keras.ops.ones(2)

    def only_first():
        optimizer.apply([ones], [first])

    def both():
        optimizer.apply([ones, ones], [first, later])

    if mode != "eager":
        import tensorflow as tf

        only_first = tf.function(only_first, jit_compile=mode == "xla")
        both = tf.function(both, jit_compile=mode == "xla")
    only_first()
    only_first()  # sync of `first`: phi = 0 + 0.5 (-2 - 0) = -1 = theta
    later.assign(np.full(2, 9.0, "float32"))
    both()  # later: phi = 9, theta = 8
    both()  # sync: later phi = 9 + 0.5 (7 - 9) = 8; first phi = -1 + 0.5 (-3 + 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(later), 8.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first), -2.0)


def test_swap_before_the_first_step_leaves_the_model_unchanged():
    variable = keras.Variable(np.full(2, 3.0, "float32"))
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(1.0), 2, 0.5)
    optimizer.build([variable])
    optimizer.swap_slow_weights()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), 3.0)
    for _ in range(3):
        optimizer.apply([keras.ops.ones(2)], [variable])
    # theta 2, 1 -> sync phi = 3 + 0.5 (1 - 3) = 2 -> theta 1
    optimizer.swap_slow_weights()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), 2.0)


@pytest.mark.smoke
def test_non_finite_inner_step_is_skipped_by_the_sync_counter():
    """A LossScaleOptimizer skip neither advances the counter nor touches phi/theta."""
    variable = keras.Variable(np.zeros(2, "float32"))
    inner = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(1.0), initial_scale=1.0
    )
    optimizer = ktp.optimizers.LookAhead(inner, sync_period=2, slow_step_size=0.5)
    optimizer.build([variable])
    slow = optimizer._slow_weights[0]
    good = keras.ops.convert_to_tensor(np.array([1.0, 1.0], "float32"))
    bad = keras.ops.convert_to_tensor(np.array([np.inf, 1.0], "float32"))

    def values():
        return (
            keras.ops.convert_to_numpy(variable).tolist(),
            keras.ops.convert_to_numpy(slow).tolist(),
            int(keras.ops.convert_to_numpy(inner.iterations)),
        )

    optimizer.apply([good])  # theta = -1, one inner step
    assert values() == ([-1.0, -1.0], [0.0, 0.0], 1)
    optimizer.apply([bad])  # skipped: nothing moves, no sync although call #2
    assert values() == ([-1.0, -1.0], [0.0, 0.0], 1)
    # The skip halved the loss scale to 0.5, so the next gradient is unscaled to 2:
    # theta = -1 - 2 = -3 at the second inner step, then the sync: phi = 0.5 * -3.
    optimizer.apply([good])
    assert values() == ([-1.5, -1.5], [-1.5, -1.5], 2)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 3


@only_backends("jax")
def test_jax_stateless_step_has_one_cond_for_the_start_and_one_for_the_sync():
    import jax

    variables = [keras.Variable(np.zeros((4, 3), "float32")) for _ in range(5)]
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(0.1))
    optimizer.build(variables)
    grads = [np.ones((4, 3), "float32")] * 5
    jaxpr = jax.make_jaxpr(optimizer.stateless_apply)(
        [v.value for v in optimizer.variables], grads, [v.value for v in variables]
    )
    assert str(jaxpr).count("cond[") == 2


@only_backends("tensorflow")
def test_tensorflow_step_has_one_loop_for_the_start_and_one_for_the_sync():
    """0-or-1-trip loops over all variables, no cond (XLA would copy them all)."""
    import tensorflow as tf

    variables = [keras.Variable(np.zeros((4, 3), "float32")) for _ in range(5)]
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(0.1))
    optimizer.build(variables)

    @tf.function
    def step():
        optimizer.apply([tf.ones((4, 3))] * 5, variables)

    graph = step.get_concrete_function().graph
    types = [op.type for op in graph.get_operations()]
    assert sum(t in ("If", "StatelessIf") for t in types) == 0
    assert sum(t in ("While", "StatelessWhile") for t in types) == 2


def _entry_copies(hlo, shape):
    """Copies of `shape`-d float32 arrays in the entry computation of `hlo`."""
    import re

    entry = hlo[hlo.index("ENTRY") :]
    pattern = r"= f32\[" + ",".join(map(str, shape)) + r"\]\S* copy\("
    return len(re.findall(pattern, entry))


@only_backends("tensorflow")
def test_tensorflow_xla_step_updates_the_variables_in_place():
    """The start of phi reads the variables before the inner step writes them: it
    must be ordered first, or XLA copies every variable on every step."""
    import tensorflow as tf

    variables = [keras.Variable(np.ones((40, 30), "float32")) for _ in range(3)]
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.Adam(1e-3))
    optimizer.build(variables)
    step = tf.function(
        lambda: optimizer.apply([tf.ones((40, 30))] * 3, variables), jit_compile=True
    )
    hlo = step.experimental_get_compiler_ir()(stage="optimized_hlo")
    assert _entry_copies(hlo, (40, 30)) == 0


@only_backends("jax")
def test_jax_step_updates_the_donated_variables_in_place():
    import jax

    variables = [keras.Variable(np.ones((40, 30), "float32")) for _ in range(3)]
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.Adam(1e-3))
    optimizer.build(variables)
    grads = [np.ones((40, 30), "float32")] * 3
    step = jax.jit(
        lambda params, state: optimizer.stateless_apply(state, grads, params),
        donate_argnums=(0, 1),
    )
    compiled = step.lower(
        [v.value for v in variables], [v.value for v in optimizer.variables]
    ).compile()
    assert _entry_copies(compiled.as_text(), (40, 30)) == 0


def test_learning_rate_reads_and_writes_go_to_the_inner_optimizer():
    inner = keras.optimizers.Adam(0.01)
    optimizer = ktp.optimizers.LookAhead(inner)
    optimizer.learning_rate = 0.5
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == 0.5
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.5


def test_learning_rate_callbacks_drive_the_inner_optimizer(rng):
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    inner = keras.optimizers.SGD(0.1)
    model.compile(optimizer=ktp.optimizers.LookAhead(inner), loss="mse")
    seen = []
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)),
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen.append(
                float(keras.ops.convert_to_numpy(inner.learning_rate))
            )
        ),
    ]
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
    # The callback's Python floats, assigned to the float32 rate: rounded once,
    # correctly on any CPU, so exactly.
    np.testing.assert_array_equal(seen, np.float32([0.1, 0.05, 0.1 / 3]))

    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=1e9
    )
    # The first epoch sets the best loss, each later one fails to beat it by 1e9.
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[plateau])
    # Halving a float32 number is exact.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(inner.learning_rate), np.float32(0.1 / 3) / 4
    )


def test_swap_slow_weights_twice_restores():
    variable = keras.Variable(np.zeros(2, "float32"))
    optimizer = ktp.optimizers.LookAhead(keras.optimizers.SGD(1.0), 3, 0.5)
    for _ in range(4):
        optimizer.apply([keras.ops.ones(2)], [variable])
    # theta: -1 -2 -3 -> sync phi = -1.5 = theta -> -2.5 (exact: no rounding).
    optimizer.swap_slow_weights()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), -1.5)
    optimizer.swap_slow_weights()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), -2.5)
    with pytest.raises(ValueError, match="needs a built optimizer"):
        ktp.optimizers.LookAhead("sgd").swap_slow_weights()


@pytest.mark.smoke
def test_config_roundtrip_and_deserialize():
    optimizer = ktp.optimizers.LookAhead(
        keras.optimizers.Adam(3e-3, beta_1=0.8),
        sync_period=7,
        slow_step_size=0.3,
        clipnorm=1.0,
    )
    restored = config_helpers.assert_config_roundtrip(optimizer)
    assert isinstance(restored.optimizer, keras.optimizers.Adam)
    assert restored.optimizer.beta_1 == 0.8 and restored.sync_period == 7
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, ktp.optimizers.LookAhead) and again.slow_step_size == 0.3
    nested = ktp.optimizers.LookAhead(
        keras.optimizers.LossScaleOptimizer(ktp.optimizers.RAdam(1e-3))
    )
    restored = config_helpers.assert_config_roundtrip(nested)
    assert isinstance(restored.optimizer.inner_optimizer, ktp.optimizers.RAdam)
    assert isinstance(ktp.optimizers.LookAhead("adam").optimizer, keras.optimizers.Adam)
    from_dict = ktp.optimizers.LookAhead(
        {"class_name": "SGD", "config": {"learning_rate": 0.3}}
    )
    assert isinstance(from_dict.optimizer, keras.optimizers.SGD)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(sync_period=0),
            ValueError,
            r"Argument `sync_period` must be an integer >= 1\. Received: sync_period=0",
        ),
        (
            dict(sync_period=2.5),
            ValueError,
            r"Argument `sync_period` must be an integer >= 1\. Received: sync_period=2\.5",
        ),
        (
            dict(slow_step_size=1.5),
            ValueError,
            r"Argument `slow_step_size` must be in \[0, 1\]\. Received: slow_step_size=1\.5",
        ),
        (
            dict(slow_step_size=-0.1),
            ValueError,
            r"Argument `slow_step_size` must be in \[0, 1\]\. Received: slow_step_size=-0\.1",
        ),
        (
            dict(learning_rate=0.1),
            ValueError,
            r"Argument `learning_rate` is not accepted: the learning rate is the inner optimizer's; "
            r"set it there\. Received: learning_rate=0\.1",
        ),
        (
            dict(momentum=0.9),
            ValueError,
            r"Argument\(s\) not recognized: \{'momentum': 0\.9\}",
        ),
        (
            dict(optimizer=lambda: None),
            TypeError,
            r"Argument `optimizer` must be a `keras.optimizers.Optimizer` instance, a string "
            r"identifier or an optimizer config\. Received: optimizer=<function",
        ),
        (dict(optimizer=3), TypeError, r"Received: optimizer=3$"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    kwargs.setdefault("optimizer", keras.optimizers.SGD())
    with pytest.raises(error, match=message):
        ktp.optimizers.LookAhead(**kwargs)


@pytest.mark.parametrize("mode", function_modes())
def test_wrapping_a_loss_scale_optimizer_in_every_mode(mode):
    """LookAhead(LossScaleOptimizer(...)) compiles (JAX: no assignment in its conds)."""
    problem = optim.Quadratic()
    inner = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.05), initial_scale=1.0
    )
    got = optim.keras_trajectory(
        ktp.optimizers.LookAhead(inner, 3, 0.5), problem, 12, mode
    )
    reference = lookahead_rule(momentum_rule(0.05, 0.0), problem.initial, 3, 0.5)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, 12)
    )
