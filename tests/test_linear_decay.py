import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import LinearDecay
from tests.helpers import schedules as helpers
from tests.helpers import tolerance
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip


@pytest.mark.parametrize(
    "initial, decay_steps, final",
    [(0.1, 1000, 0.0), (0.5, 3, 0.25), (1e-3, 250_000, 1e-5)],
)
def test_matches_closed_form(initial, decay_steps, final):
    schedule = LinearDecay(initial, decay_steps, final_learning_rate=final)
    T = decay_steps
    steps = np.unique(
        np.concatenate(
            [np.linspace(0, 1.2 * T, 61).round(), [0, 1, T - 1, T, T + 1, 5 * T]]
        )
    ).astype(np.int64)
    want = helpers.table(
        helpers.linear_decay, steps, initial=initial, decay_steps=T, final=final
    )
    helpers.assert_schedule_equals(schedule, steps, want)


def test_equals_keras_polynomial_decay_of_power_one():
    ours = LinearDecay(0.1, 40, final_learning_rate=0.02)
    theirs = keras.optimizers.schedules.PolynomialDecay(0.1, 40, 0.02, power=1.0)
    steps = np.arange(0, 50)
    want = np.array([float(keras.ops.convert_to_numpy(theirs(s))) for s in steps])
    # Keras's PolynomialDecay computes `(initial - end) * (1 - t / T) ** 1 + end`:
    # `1 - t / T` cancels near T, an error absolute at the scale of the initial rate
    # (four roundings and `pow`'s unit or two); ours is relative (`RTOL`, 8).
    tolerance.assert_close(helpers.evaluate(ours, steps), want, 6 + 8, scale=0.1)


@settings(max_examples=30, deadline=None)
@given(
    initial=st.floats(1e-5, 10.0),
    fraction=st.floats(0.0, 1.0),
    decay_steps=st.integers(1, 10**6),
)
def test_bounded_and_monotone(initial, fraction, decay_steps):
    final = initial * fraction
    schedule = LinearDecay(initial, decay_steps, final_learning_rate=final)
    steps = np.linspace(0, 2 * decay_steps, 64).round()
    values = helpers.evaluate(schedule, steps, dtype="float32")
    tolerance = helpers.RTOL * initial
    assert np.all(values <= initial + tolerance) and np.all(values >= final - tolerance)
    assert np.all(np.diff(values) <= tolerance)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"decay_steps": -5},
            r"Argument `decay_steps` must be an integer > 0\. Received: decay_steps=-5",
        ),
        (
            {"initial_learning_rate": -1.0},
            r"Argument `initial_learning_rate` must be >= 0\. Received: initial_learning_rate=-1\.0",
        ),
        (
            {"final_learning_rate": 0.5},
            r"Argument `final_learning_rate` must be in \[0, 0\.1\]\. Received: final_learning_rate=0\.5",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    arguments = {"initial_learning_rate": 0.1, "decay_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        LinearDecay(**arguments)


@pytest.mark.smoke
def test_smoke_config_and_values():
    restored = assert_config_roundtrip(LinearDecay(0.1, 100, final_learning_rate=0.01))
    steps = [0, 1, 50, 99, 100, 101]
    want = helpers.table(
        helpers.linear_decay, steps, initial=0.1, decay_steps=100, final=0.01
    )
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(restored)
