"""RAdam against a float64 NumPy reference written from Liu et al. 2019."""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers import config as config_helpers
from tests.helpers import optim
from tests.helpers import tolerance
from tests.helpers.backend import function_modes
from tests.test_lookahead import keras_adam_rule


def radam_rule(lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, threshold=5.0):
    """The paper's Algorithm 2 with Keras's epsilon placement, in float64."""
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def update(t, params, grads, state):
        m, v = state or ([np.zeros_like(p) for p in params],) * 2
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        rho = rho_inf - 2.0 * t * b2**t / (1.0 - b2**t)
        if rho > threshold:
            r = np.sqrt(
                (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
            )
            alpha = lr * r * np.sqrt(1 - b2**t) / (1 - b1**t)
            params = [
                p - alpha * mi / (np.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v)
            ]
        else:
            params = [p - lr / (1 - b1**t) * mi for p, mi in zip(params, m)]
        return params, (m, v)

    return update


def first_rectified_step(b2, threshold=5.0):
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    t = 1
    while rho_inf - 2.0 * t * b2**t / (1.0 - b2**t) <= threshold:
        t += 1
    return t


@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize(
    "problem, kwargs",
    [
        (optim.Quadratic(), dict(learning_rate=0.01)),
        (
            optim.Quadratic(),
            dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=0.0),
        ),
        (optim.TinyMLP(), dict(learning_rate=0.01, beta_2=0.98, sma_threshold=6.0)),
    ],
    ids=["quadratic", "quadratic-b2-0.99-eps0", "mlp"],
)
def test_trajectory_matches_float64_reference(problem, kwargs, mode):
    steps = 120
    b2 = kwargs.get("beta_2", 0.999)
    assert 1 < first_rectified_step(b2, kwargs.get("sma_threshold", 5.0)) < steps
    got = optim.keras_trajectory(ktp.optimizers.RAdam(**kwargs), problem, steps, mode)
    rule = radam_rule(
        lr=kwargs["learning_rate"],
        b1=kwargs.get("beta_1", 0.9),
        b2=b2,
        eps=kwargs.get("epsilon", 1e-7),
        threshold=kwargs.get("sma_threshold", 5.0),
    )
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(rule, problem, steps)
    )


def test_rho_is_accurate_in_float32():
    """The stable rho_t agrees with float64 to float32 precision, both branches."""
    optimizer = ktp.optimizers.RAdam()
    steps = np.array([1, 2, 5, 6, 7, 50, 400, 499, 500, 501, 2000, 10**5], "float32")
    got = keras.ops.convert_to_numpy(optimizer._rho(keras.ops.convert_to_tensor(steps)))
    t = steps.astype(np.float64)
    rho_inf = 2.0 / (1.0 - 0.999) - 1.0
    want = rho_inf - 2.0 * t * 0.999**t / (1.0 - 0.999**t)
    # The series and the `rho_inf - 2 t / expm1(t log(1 / beta_2))` branch each round
    # ~4 times (expm1 itself a unit or two on any CPU) at the scale of their terms:
    # rho itself, or rho_inf - rho where the direct form subtracts.
    scale = np.abs(want) + np.abs(rho_inf - want)
    tolerance.assert_within(got, want, 4 * tolerance.EPS32 * scale)


def test_rectified_step_equals_keras_adam_once_r_is_one():
    """With beta_2^t negligible, r_t = 1 and the bias corrections are 1: Adam's step."""
    problem = optim.Quadratic()
    trajectories = []
    for optimizer in (
        ktp.optimizers.RAdam(0.01, beta_1=0.5, beta_2=0.9),
        keras.optimizers.Adam(0.01, beta_1=0.5, beta_2=0.9),
    ):
        variables = [keras.Variable(p.astype("float32")) for p in problem.initial]
        optimizer.build(variables)
        optimizer.iterations.assign(2000)
        trajectory = []
        for _ in range(50):
            grads = problem.grads([v.value for v in variables], keras.ops)
            optimizer.apply(grads, variables)
            trajectory.append([keras.ops.convert_to_numpy(v) for v in variables])
        trajectories.append(trajectory)
    # Both follow Adam's float64 trajectory from step 2001 to float32 precision (the
    # two compute their step with different float32 operations: not bit for bit).
    adam = keras_adam_rule(0.01, b1=0.5, b2=0.9)
    reference = optim.reference_trajectory(
        lambda t, *args: adam(t + 2000, *args), problem, 50
    )
    for trajectory in trajectories:
        optim.assert_trajectories_close(trajectory, reference)


def test_momentum_steps_before_threshold_ignore_v():
    """Before the threshold the step is lr m_hat, whatever the scale of v."""
    variable = keras.Variable(np.zeros(3, "float32"))
    optimizer = ktp.optimizers.RAdam(0.1, beta_1=0.9, beta_2=0.999)
    grad = np.array([1.0, -100.0, 1e-3], "float32")
    optimizer.apply([keras.ops.convert_to_tensor(grad)], [variable])
    # Elementwise, without a reduction: each element within ~6 roundings of itself.
    want = -0.1 * grad.astype(np.float64)
    got = keras.ops.convert_to_numpy(variable)
    tolerance.assert_within(got, want, 8 * tolerance.EPS32 * np.abs(want))


def test_state_is_two_slots_per_parameter():
    variables = [
        keras.Variable(np.zeros((3, 4), "float32")),
        keras.Variable(np.zeros(5, "float32")),
    ]
    optimizer = ktp.optimizers.RAdam()
    optimizer.build(variables)
    sizes = [int(np.prod(v.shape)) for v in optimizer.variables if len(v.shape) > 0]
    assert sum(sizes) == 2 * 17


@pytest.mark.smoke
def test_config_roundtrip_and_deserialize():
    optimizer = ktp.optimizers.RAdam(
        2e-3, beta_1=0.8, beta_2=0.99, epsilon=0.0, sma_threshold=6.0, clipnorm=1.0
    )
    restored = config_helpers.assert_config_roundtrip(optimizer)
    assert restored.epsilon == 0.0
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, ktp.optimizers.RAdam) and again.sma_threshold == 6.0
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 100, 0.5)
    config_helpers.assert_config_roundtrip(ktp.optimizers.RAdam(schedule))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(learning_rate=-1.0),
            r"Argument `learning_rate` must be >= 0\. Received: learning_rate=-1\.0",
        ),
        (
            dict(beta_1=1.0),
            r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1\.0",
        ),
        (
            dict(beta_2=-0.1),
            r"Argument `beta_2` must be in \[0, 1\)\. Received: beta_2=-0\.1",
        ),
        (
            dict(epsilon=-1e-8),
            r"Argument `epsilon` must be >= 0\. Received: epsilon=-1e-08",
        ),
        (
            dict(sma_threshold=3.0),
            r"Argument `sma_threshold` must be >= 4\. Received: sma_threshold=3\.0",
        ),
        (dict(amsgrad=True), r"Argument\(s\) not recognized: \{'amsgrad': True\}"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ktp.optimizers.RAdam(**kwargs)
