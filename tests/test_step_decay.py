import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import StepDecay
from tests.helpers import schedules as helpers
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip


def _around(points, spread=2):
    return [p + d for p in points for d in range(-spread, spread + 1) if p + d >= 0]


@pytest.mark.parametrize(
    "boundaries, decay_rate, steps_per_epoch",
    [
        ([30, 60, 90], 0.1, 391),
        ([5, 7, 8], 0.5, 1),
        ([1000], 0.2, None),
        ([1, 2], 1.0, None),
    ],
)
def test_matches_closed_form(boundaries, decay_rate, steps_per_epoch):
    schedule = StepDecay(0.4, boundaries, decay_rate, steps_per_epoch=steps_per_epoch)
    boundary_steps = [b * (steps_per_epoch or 1) for b in boundaries]
    last = boundary_steps[-1]
    steps = np.unique(
        np.concatenate(
            [np.linspace(0, 1.2 * last, 50).round(), _around(boundary_steps)]
        )
    ).astype(np.int64)
    want = helpers.table(
        helpers.step_decay,
        steps,
        initial=0.4,
        boundary_steps=boundary_steps,
        decay_rate=decay_rate,
    )
    helpers.assert_schedule_equals(schedule, steps, want)


def test_the_resnet_recipe_switches_at_the_first_step_of_each_epoch():
    schedule = StepDecay(0.1, [30, 60, 90], steps_per_epoch=100)
    got = helpers.evaluate(schedule, [0, 2999, 3000, 5999, 6000, 8999, 9000, 10**6])
    helpers.assert_matches(got, [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])


def test_is_keras_piecewise_constant_decay_one_step_earlier():
    ours = StepDecay(0.1, [10, 20], decay_rate=0.5)
    theirs = keras.optimizers.schedules.PiecewiseConstantDecay(
        [9, 19], [0.1, 0.05, 0.025]
    )
    steps = np.arange(0, 30)
    want = [float(keras.ops.convert_to_numpy(theirs(s))) for s in steps]
    helpers.assert_matches(helpers.evaluate(ours, steps), want)


@settings(max_examples=30, deadline=None)
@given(
    boundaries=st.lists(st.integers(1, 10**5), min_size=1, max_size=6, unique=True),
    decay_rate=st.floats(1e-3, 1.0),
    steps_per_epoch=st.one_of(st.none(), st.integers(1, 100)),
)
def test_bounded_and_monotone(boundaries, decay_rate, steps_per_epoch):
    boundaries = sorted(boundaries)
    schedule = StepDecay(1.0, boundaries, decay_rate, steps_per_epoch)
    last = boundaries[-1] * (steps_per_epoch or 1)
    values = helpers.evaluate(
        schedule, np.linspace(0, 2 * last, 80).round(), dtype="float32"
    )
    lowest = decay_rate ** len(boundaries)
    assert np.all(values <= 1.0) and np.all(values >= lowest * (1 - helpers.RTOL))
    assert np.all(np.diff(values) <= 0.0)


BOUNDARIES = r"Argument `boundaries` must be a non-empty list of strictly increasing integers > 0"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"boundaries": [30, 30, 90]},
            BOUNDARIES + r" \(steps\)\. Received: boundaries=\[30, 30, 90\]",
        ),
        (
            {"boundaries": [60, 30]},
            BOUNDARIES + r" \(steps\)\. Received: boundaries=\[60, 30\]",
        ),
        (
            {"boundaries": [30, 60.5], "steps_per_epoch": 10},
            BOUNDARIES + r" \(epochs\)\. Received: boundaries=\[30, 60\.5\]",
        ),
        ({"boundaries": [0, 10]}, BOUNDARIES),
        ({"boundaries": []}, BOUNDARIES),
        ({"boundaries": 30}, BOUNDARIES),
        (
            {"decay_rate": 0.0},
            r"Argument `decay_rate` must be in \(0, 1\]\. Received: decay_rate=0\.0",
        ),
        (
            {"decay_rate": 2.0},
            r"Argument `decay_rate` must be in \(0, 1\]\. Received: decay_rate=2\.0",
        ),
        (
            {"steps_per_epoch": 0},
            r"Argument `steps_per_epoch` must be an integer >= 1\. Received: steps_per_epoch=0",
        ),
        (
            {"initial_learning_rate": -0.1},
            r"Argument `initial_learning_rate` must be >= 0\. Received: initial_learning_rate=-0\.1",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    arguments = {"initial_learning_rate": 0.1, "boundaries": [30, 60], **kwargs}
    with pytest.raises(ValueError, match=message):
        StepDecay(**arguments)


@pytest.mark.smoke
def test_smoke_config_and_values():
    schedule = StepDecay(0.1, [3, 6], decay_rate=0.2, steps_per_epoch=10)
    restored = assert_config_roundtrip(schedule)
    steps = [0, 29, 30, 59, 60, 1000]
    want = helpers.table(
        helpers.step_decay, steps, initial=0.1, boundary_steps=[30, 60], decay_rate=0.2
    )
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(restored)
