import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import InverseSqrtDecay
from tests.helpers import schedules as helpers
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip


@pytest.mark.parametrize("initial, timescale", [(0.1, 1), (1e-3, 4000), (2.0, 2.5)])
def test_matches_closed_form(initial, timescale):
    schedule = InverseSqrtDecay(initial, timescale=timescale)
    steps = np.unique(
        np.concatenate(
            [
                np.geomspace(1, 10**7, 60).round(),
                [
                    0,
                    1,
                    2,
                    np.floor(timescale),
                    np.ceil(timescale),
                    np.ceil(timescale) + 1,
                ],
            ]
        )
    ).astype(np.int64)
    want = helpers.table(
        helpers.inverse_sqrt_decay, steps, initial=initial, timescale=timescale
    )
    helpers.assert_schedule_equals(schedule, steps, want)


def test_timescale_one_is_the_lectures_rule():
    schedule = InverseSqrtDecay(0.3)
    steps = np.arange(1, 200)
    helpers.assert_matches(helpers.evaluate(schedule, steps), 0.3 / np.sqrt(steps))


@settings(max_examples=30, deadline=None)
@given(initial=st.floats(1e-5, 10.0), timescale=st.floats(0.5, 1e5))
def test_bounded_monotone_and_continuous_at_the_timescale(initial, timescale):
    schedule = InverseSqrtDecay(initial, timescale=timescale)
    steps = np.geomspace(1, 100 * timescale, 64).round()
    values = helpers.evaluate(schedule, steps, dtype="float32")
    rtol = helpers.RTOL
    assert np.all(values <= initial * (1 + rtol)) and np.all(values > 0)
    assert np.all(np.diff(values) <= rtol * initial)
    # No jump at the timescale: just before, at and just after it, the values are
    # those of the (continuous) closed form at the same float32 steps, within RTOL.
    around = np.float32([timescale * (1 - 1e-4), timescale, timescale * (1 + 1e-4)])
    helpers.assert_matches(
        helpers.evaluate(schedule, around, dtype="float32"),
        helpers.table(
            helpers.inverse_sqrt_decay, around, initial=initial, timescale=timescale
        ),
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timescale": 0}, r"Argument `timescale` must be > 0\. Received: timescale=0"),
        (
            {"initial_learning_rate": -0.5},
            r"Argument `initial_learning_rate` must be >= 0\. Received: initial_learning_rate=-0\.5",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InverseSqrtDecay(**{"initial_learning_rate": 0.1, **kwargs})


@pytest.mark.smoke
def test_smoke_config_and_values():
    restored = assert_config_roundtrip(InverseSqrtDecay(0.1, timescale=100))
    steps = [0, 50, 100, 400, 10_000]
    want = helpers.table(helpers.inverse_sqrt_decay, steps, initial=0.1, timescale=100)
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(restored)
