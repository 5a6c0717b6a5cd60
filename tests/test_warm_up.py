import functools

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import CosineDecay
from keras_trainplus.schedules import InverseSqrtDecay
from keras_trainplus.schedules import StepDecay
from keras_trainplus.schedules import WarmUp
from tests.helpers import schedules as helpers
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip


def _steps(warmup_steps, total):
    around = [warmup_steps + d for d in (-2, -1, 0, 1, 2)]
    return np.unique(
        np.concatenate(
            [np.linspace(0, total, 60).round(), [0, 1], around, [total + 10]]
        )
    ).astype(np.int64)


@pytest.mark.parametrize("shape", ["linear", "cosine"])
@pytest.mark.parametrize("initial", [0.0, 0.01])
def test_matches_closed_form_around_cosine_decay(shape, initial):
    schedule = WarmUp(CosineDecay(0.1, 900, 0.001), 100, initial, shape=shape)
    inner = functools.partial(
        helpers.cosine_decay, initial=0.1, decay_steps=900, final=0.001
    )
    steps = _steps(100, 1000)
    want = helpers.table(
        helpers.warm_up,
        steps,
        inner=inner,
        warmup_steps=100,
        initial=initial,
        shape=shape,
    )
    helpers.assert_schedule_equals(schedule, steps, want)


def test_matches_closed_form_around_a_constant_and_step_decay():
    steps = _steps(50, 500)
    want = helpers.table(
        helpers.warm_up, steps, inner=lambda t: 0.3, warmup_steps=50, initial=0.0
    )
    helpers.assert_schedule_equals(WarmUp(0.3, 50), steps, want)

    inner = functools.partial(
        helpers.step_decay, initial=0.2, boundary_steps=[100, 200], decay_rate=0.1
    )
    want = helpers.table(helpers.warm_up, steps, inner=inner, warmup_steps=50)
    helpers.assert_matches(
        helpers.evaluate(WarmUp(StepDecay(0.2, [100, 200]), 50), steps), want
    )


def test_wraps_a_keras_schedule():
    inner = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    steps = _steps(20, 100)
    want = helpers.table(
        helpers.warm_up, steps, inner=lambda t: 0.1 * 0.5 ** (t / 10), warmup_steps=20
    )
    helpers.assert_matches(helpers.evaluate(WarmUp(inner, 20), steps), want)


def test_zero_warmup_steps_is_the_wrapped_schedule():
    steps = np.arange(0, 120, 3)
    want = helpers.table(helpers.inverse_sqrt_decay, steps, initial=0.1, timescale=10)
    helpers.assert_matches(
        helpers.evaluate(WarmUp(InverseSqrtDecay(0.1, 10), 0), steps), want
    )


@pytest.mark.parametrize(
    "init, peak, warmup_steps, decay_steps, end",
    [(0.0, 0.1, 100, 1000, 0.0), (1e-4, 3e-3, 7, 50, 1e-5), (0.02, 0.5, 1, 10, 0.05)],
)
def test_equals_optax_warmup_cosine_decay_schedule(
    init, peak, warmup_steps, decay_steps, end
):
    # optax's `decay_steps` is the total length, warm-up included.
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    steps = _steps(warmup_steps, decay_steps + 5)
    with jax.enable_x64(True):
        theirs = optax.warmup_cosine_decay_schedule(
            init, peak, warmup_steps, decay_steps, end_value=end
        )
        want = np.asarray(theirs(np.asarray(steps, dtype=np.int64)), dtype=np.float64)
    assert want.dtype == np.float64
    ours = WarmUp(
        CosineDecay(peak, decay_steps - warmup_steps, end), warmup_steps, init
    )
    helpers.assert_matches(helpers.evaluate(ours, steps), want)


@settings(max_examples=30, deadline=None)
@given(
    warmup_steps=st.integers(1, 10**5),
    initial=st.floats(0.0, 1.0),
    peak=st.floats(1.0, 5.0),
    shape=st.sampled_from(["linear", "cosine"]),
)
def test_continuous_bounded_and_monotone_during_warmup(
    warmup_steps, initial, peak, shape
):
    schedule = WarmUp(CosineDecay(peak, 3 * warmup_steps), warmup_steps, initial, shape)
    # No jump at the junction: just before, at and just after it, the values are
    # those of the (continuous) closed form at the same float32 steps, within RTOL.
    eps = 1e-3 * warmup_steps
    junction = np.float32([warmup_steps - eps, warmup_steps, warmup_steps + eps])
    inner = functools.partial(
        helpers.cosine_decay, initial=peak, decay_steps=3 * warmup_steps
    )
    want = helpers.table(
        helpers.warm_up,
        junction,
        inner=inner,
        warmup_steps=warmup_steps,
        initial=initial,
        shape=shape,
    )
    helpers.assert_matches(helpers.evaluate(schedule, junction, dtype="float32"), want)
    assert want[1] == peak
    ramp = helpers.evaluate(schedule, np.linspace(0, warmup_steps, 50), dtype="float32")
    assert np.all(np.diff(ramp) >= -helpers.RTOL * peak)
    everywhere = helpers.evaluate(
        schedule, np.linspace(0, 5 * warmup_steps, 80), dtype="float32"
    )
    assert np.all(everywhere >= -helpers.RTOL * peak) and np.all(
        everywhere <= peak * (1 + helpers.RTOL)
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"warmup_steps": -1},
            r"Argument `warmup_steps` must be an integer >= 0\. Received: warmup_steps=-1",
        ),
        (
            {"warmup_steps": 2.5},
            r"Argument `warmup_steps` must be an integer >= 0\. Received: warmup_steps=2\.5",
        ),
        (
            {"initial_learning_rate": -0.1},
            r"Argument `initial_learning_rate` must be >= 0\. Received: initial_learning_rate=-0\.1",
        ),
        (
            {"shape": "exp"},
            r"Argument `shape` must be one of 'linear', 'cosine'\. Received: shape='exp'",
        ),
        (
            {"schedule": -0.1},
            r"Argument `schedule` must be >= 0\. Received: schedule=-0\.1",
        ),
        (
            {"schedule": "cosine"},
            r"Argument `schedule` must be a LearningRateSchedule or a float >= 0\. Received: schedule='cosine'",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    arguments = {"schedule": 0.1, "warmup_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        WarmUp(**arguments)


@pytest.mark.smoke
def test_smoke_config_and_values():
    schedule = WarmUp(CosineDecay(0.1, 90, 0.01), 10, 0.001, shape="cosine")
    restored = assert_config_roundtrip(schedule)
    assert isinstance(restored.schedule, CosineDecay)
    assert_config_roundtrip(WarmUp(0.5, 3))
    steps = [0, 5, 9, 10, 11, 55, 100, 120]
    inner = functools.partial(
        helpers.cosine_decay, initial=0.1, decay_steps=90, final=0.01
    )
    want = helpers.table(
        helpers.warm_up,
        steps,
        inner=inner,
        warmup_steps=10,
        initial=0.001,
        shape="cosine",
    )
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(restored)
