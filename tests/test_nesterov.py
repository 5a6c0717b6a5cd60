"""Nesterov momentum against the look-ahead definition, written in float64."""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers import config as config_helpers
from tests.helpers import optim
from tests.helpers import tolerance
from tests.helpers.backend import function_modes


def momentum_at(t, momentum, initial=None, warmup=0):
    if initial is None:
        return momentum
    return initial + (momentum - initial) * min((t - 1) / warmup, 1.0)


def nesterov_rule(lr, momentum, initial=None, warmup=0):
    """Sutskever et al. 2013: v_t = rho_t v - lr grad f(x + rho_t v); x_t = x + v_t.

    The optimizer stores the look-ahead point x~_t = x_t + rho_{t+1} v_t, so the
    reference recovers x from it, steps in x, and hands back the next x~.
    """

    def update(t, lookahead, grads, velocity):
        rho, rho_next = (momentum_at(s, momentum, initial, warmup) for s in (t, t + 1))
        velocity = velocity or [np.zeros_like(p) for p in lookahead]
        x = [p - rho * v for p, v in zip(lookahead, velocity)]
        velocity = [rho * v - lr * g for v, g in zip(velocity, grads)]
        x = [xi + v for xi, v in zip(x, velocity)]
        return [xi + rho_next * v for xi, v in zip(x, velocity)], velocity

    return update


@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize(
    "problem, kwargs",
    [
        (optim.Quadratic(), dict(learning_rate=0.05, momentum=0.9)),
        (
            optim.Quadratic(),
            dict(
                learning_rate=0.05,
                momentum=0.95,
                initial_momentum=0.5,
                momentum_warmup_steps=60,
            ),
        ),
        (
            optim.TinyMLP(),
            dict(
                learning_rate=0.5,
                momentum=0.9,
                initial_momentum=0.0,
                momentum_warmup_steps=30,
            ),
        ),
    ],
    ids=["quadratic", "quadratic-ramp", "mlp-ramp"],
)
def test_trajectory_matches_float64_reference(problem, kwargs, mode):
    steps = 120
    got = optim.keras_trajectory(
        ktp.optimizers.Nesterov(**kwargs), problem, steps, mode
    )
    rule = nesterov_rule(
        kwargs["learning_rate"],
        kwargs["momentum"],
        kwargs.get("initial_momentum"),
        kwargs.get("momentum_warmup_steps", 0),
    )
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(rule, problem, steps)
    )


@pytest.mark.parametrize("mode", function_modes())
def test_constant_momentum_equals_keras_sgd_nesterov(mode):
    problem = optim.TinyMLP()
    ours = optim.keras_trajectory(
        ktp.optimizers.Nesterov(0.3, momentum=0.8), problem, 100, mode
    )
    keras_sgd = keras.optimizers.SGD(0.3, momentum=0.8, nesterov=True)
    theirs = optim.keras_trajectory(keras_sgd, problem, 100, mode)
    # Bit for bit on any CPU: with a constant momentum both steps are the same
    # elementwise operations in the same order (`v * rho - g * lr`, then
    # `x + (v * rho - g * lr)`, rho and lr cast from the same Python floats), with
    # no reduction, and the gradients come from the same graph; equal inputs then
    # give equal outputs at every step, whatever the kernels round like.
    optim.assert_trajectories_equal(ours, theirs)


def test_weight_decay_is_decoupled_and_honours_exclusions():
    kernel = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
    bias = keras.Variable(np.ones((2,), "float32"), name="bias")
    optimizer = ktp.optimizers.Nesterov(0.1, momentum=0.5, weight_decay=0.2)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.apply([keras.ops.zeros((2, 2)), keras.ops.zeros((2,))], [kernel, bias])
    # Decoupled decay `x - x * (lr * decay)`: three roundings at the scale 1 of x.
    tolerance.assert_close(keras.ops.convert_to_numpy(kernel), 1 - 0.1 * 0.2, 3)
    # A zero gradient and no decay leave the bias exactly as it was.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bias), 1.0)


def test_state_is_one_slot_per_parameter():
    optimizer = ktp.optimizers.Nesterov()
    optimizer.build([keras.Variable(np.zeros((3, 4), "float32"))])
    sizes = [int(np.prod(v.shape)) for v in optimizer.variables if len(v.shape) > 0]
    assert sizes == [12]


@pytest.mark.smoke
def test_config_roundtrip_and_deserialize():
    optimizer = ktp.optimizers.Nesterov(
        0.1,
        momentum=0.95,
        initial_momentum=0.5,
        momentum_warmup_steps=100,
        clipvalue=2.0,
    )
    restored = config_helpers.assert_config_roundtrip(optimizer)
    assert restored.momentum_warmup_steps == 100
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, ktp.optimizers.Nesterov) and again.initial_momentum == 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(learning_rate=-0.1),
            r"Argument `learning_rate` must be >= 0\. Received: learning_rate=-0\.1",
        ),
        (
            dict(momentum=1.0),
            r"Argument `momentum` must be in \[0, 1\)\. Received: momentum=1\.0",
        ),
        (
            dict(initial_momentum=-0.5, momentum_warmup_steps=10),
            r"Argument `initial_momentum` must be in \[0, 1\)\. Received: initial_momentum=-0\.5",
        ),
        (
            dict(momentum_warmup_steps=-1),
            r"Argument `momentum_warmup_steps` must be an integer >= 0\. Received: momentum_warmup_steps=-1",
        ),
        (
            dict(initial_momentum=0.5),
            r"Argument `momentum_warmup_steps` must be an integer >= 1 when `initial_momentum` is set\. "
            r"Received: momentum_warmup_steps=0",
        ),
        (dict(nesterov=True), r"Argument\(s\) not recognized: \{'nesterov': True\}"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ktp.optimizers.Nesterov(**kwargs)
