"""The shared harness must itself be right: check it against Keras's SGD and Adam."""

import keras
import numpy as np
import pytest

from keras_trainplus import _validation
from tests.helpers import config as config_helpers
from tests.helpers import optim
from tests.helpers.backend import function_modes
from tests.test_lookahead import momentum_rule

pytestmark = pytest.mark.smoke


def _sgd(t, params, grads, state):
    return [p - 0.05 * g for p, g in zip(params, grads)], state


def _adam(t, params, grads, state, lr=0.01, b1=0.9, b2=0.999, eps=1e-7):
    # Keras's Adam forms beta**t from the float32-rounded betas but the moment
    # updates' (1 - beta) from the Python floats; the reference does the same.
    b1_power, b2_power = (float(np.float32(b)) ** t for b in (b1, b2))
    m, v = state or ([np.zeros_like(p) for p in params],) * 2
    m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
    v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
    alpha = lr * np.sqrt(1 - b2_power) / (1 - b1_power)
    params = [p - alpha * mi / (np.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v)]
    return params, (m, v)


@pytest.mark.parametrize("problem", [optim.Quadratic(), optim.TinyMLP()])
@pytest.mark.parametrize("mode", function_modes())
def test_harness_reproduces_keras_sgd_and_adam(problem, mode):
    got = optim.keras_trajectory(keras.optimizers.SGD(0.05), problem, 100, mode)
    optim.assert_trajectories_close(got, optim.reference_trajectory(_sgd, problem, 100))
    got = optim.keras_trajectory(keras.optimizers.Adam(0.01), problem, 100, mode)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(_adam, problem, 100)
    )


def test_harness_detects_a_wrong_rule():
    problem = optim.Quadratic()
    got = optim.keras_trajectory(keras.optimizers.SGD(0.05), problem, 5)

    def slightly_off(t, params, grads, state):
        return [p - 0.0501 * g for p, g in zip(params, grads)], state

    with pytest.raises(AssertionError, match="step 1, parameter 0"):
        optim.assert_trajectories_close(
            got, optim.reference_trajectory(slightly_off, problem, 5)
        )


def _adam_off_by_one(t, params, grads, state):
    return _adam(t + 1, params, grads, state)


def _adam_without_second_moment_correction(t, params, grads, state):
    m, v = state or ([np.zeros_like(p) for p in params],) * 2
    m = [0.9 * mi + 0.1 * g for mi, g in zip(m, grads)]
    v = [0.999 * vi + 0.001 * g * g for vi, g in zip(v, grads)]
    alpha = 0.01 / (1 - float(np.float32(0.9)) ** t)
    params = [p - alpha * mi / (np.sqrt(vi) + 1e-7) for p, mi, vi in zip(params, m, v)]
    return params, (m, v)


# Bugs a reference comparison must catch, with the step at which each shows. Each is
# caught by more than `MARGIN` times the bound: the bound is not a near miss.
MARGIN = 10
BUGS = {
    "adam-off-by-one-step": (
        lambda: keras.optimizers.Adam(0.01),
        _adam_off_by_one,
        1,
    ),
    "adam-wrong-bias-correction": (
        lambda: keras.optimizers.Adam(0.01),
        _adam_without_second_moment_correction,
        1,
    ),
    "momentum-0.899-for-0.9": (
        lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        momentum_rule(0.05, 0.899),
        2,
    ),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
@pytest.mark.parametrize("problem", [optim.Quadratic(), optim.TinyMLP()])
def test_harness_catches_injected_bugs(bug, problem):
    make, wrong_rule, first_step = BUGS[bug]
    got = optim.keras_trajectory(make(), problem, 60)
    wrong = optim.reference_trajectory(wrong_rule, problem, 60)
    with pytest.raises(AssertionError, match=f"step {first_step}, parameter"):
        optim.assert_trajectories_close(got, wrong)
    with pytest.raises(AssertionError, match=f"step {first_step}, parameter"):
        optim.assert_trajectories_close(
            got, wrong, factor=MARGIN * optim.TRAJECTORY_FACTOR
        )


def test_close_compares_with_a_reference_only():
    problem = optim.Quadratic()
    got = optim.keras_trajectory(keras.optimizers.SGD(0.05), problem, 3)
    with pytest.raises(TypeError, match="must be a `Reference`"):
        optim.assert_trajectories_close(got, got)
    optim.assert_trajectories_equal(got, got)


def test_config_roundtrip_rejects_unregistered_objects():
    with pytest.raises(AssertionError):
        config_helpers.assert_config_roundtrip(keras.optimizers.SGD(0.1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(name="beta_1", value=1.0, low=0, high=1, high_inclusive=False),
            r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1\.0",
        ),
        (
            dict(name="sync_period", value=0, low=1, integer=True),
            r"Argument `sync_period` must be an integer >= 1\. Received: sync_period=0",
        ),
        (
            dict(name="epsilon", value=float("nan"), low=0),
            r"Argument `epsilon` must be >= 0\. Received: epsilon=nan",
        ),
        (
            dict(name="steps", value=2.5, low=1, integer=True),
            r"Argument `steps` must be an integer >= 1\. Received: steps=2\.5",
        ),
        (
            dict(name="flag", value=True, low=0),
            r"Argument `flag` must be >= 0\. Received: flag=True",
        ),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _validation.check_number(**kwargs)


def test_validation_pairs_and_choices():
    assert _validation.check_range_pair("scale", (0.08, 1.0), 0, 1) == (0.08, 1.0)
    assert _validation.check_range_pair("rotation", 0.2) == (-0.2, 0.2)
    assert _validation.check_range_pair("zoom", 0.3, 0, None) == (0.0, 0.3)
    with pytest.raises(ValueError, match=r"Argument `scale` must be a \(min, max\)"):
        _validation.check_range_pair("scale", (1.0, 0.5), 0, 1)
    with pytest.raises(ValueError, match=r"Received: anneal='cosine'"):
        _validation.check_choice("anneal", "cosine", ("cos", "linear"))
    assert _validation.check_number("steps", 3.0, low=1, integer=True) == 3
