import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import CosineDecay
from tests.helpers import schedules as helpers
from tests.helpers import tolerance
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip


@pytest.mark.parametrize(
    "initial, decay_steps, final",
    [(0.1, 1000, 0.0), (0.5, 7, 0.05), (3e-4, 100_000, 1e-6), (0.2, 1, 0.0)],
)
def test_matches_closed_form(initial, decay_steps, final):
    schedule = CosineDecay(initial, decay_steps, final_learning_rate=final)
    T = decay_steps
    steps = np.unique(
        np.concatenate(
            [
                np.linspace(0, 1.3 * T, 97).round(),
                [0, 1, 2, T // 2, T - 2, T - 1, T, T + 1, 2 * T, 10**7],
            ]
        )
    ).astype(np.int64)
    steps = steps[steps >= 0]
    want = helpers.table(
        helpers.cosine_decay, steps, initial=initial, decay_steps=T, final=final
    )
    helpers.assert_schedule_equals(schedule, steps, want)


def test_equals_keras_cosine_decay_with_alpha():
    import keras

    ours = CosineDecay(0.1, 50, final_learning_rate=0.01)
    theirs = keras.optimizers.schedules.CosineDecay(0.1, 50, alpha=0.1)
    steps = np.arange(0, 60)
    got = helpers.evaluate(ours, steps)
    want = np.array([float(keras.ops.convert_to_numpy(theirs(s))) for s in steps])
    # Keras evaluates `1 + cos(pi t / T)` in float32, which cancels near t = T: its
    # error is absolute, at the scale of the initial rate: the angle's two roundings
    # times |sin| <= 1 (pi units), cos itself (1), the sum, the (1 - alpha) and
    # initial products and the alpha sum (4 halves) make ~4 units of EPS32 after the
    # halving; ours adds its own relative `RTOL` (8).
    tolerance.assert_close(got, want, 12, scale=0.1)


@settings(max_examples=30, deadline=None)
@given(
    initial=st.floats(1e-5, 10.0),
    fraction=st.floats(0.0, 1.0),
    decay_steps=st.integers(1, 10**6),
)
def test_bounded_monotone_and_continuous_at_the_end(initial, fraction, decay_steps):
    final = initial * fraction
    schedule = CosineDecay(initial, decay_steps, final_learning_rate=final)
    steps = np.linspace(0, 2 * decay_steps, 64).round()
    values = helpers.evaluate(schedule, steps, dtype="float32")
    slack = helpers.RTOL * initial
    assert np.all(values <= initial + slack) and np.all(values >= final - slack)
    assert np.all(np.diff(values) <= slack)
    # No jump at the end: just before and at it, the values are those of the
    # (continuous) closed form at the same float32 steps, each within RTOL of its
    # own (at most `initial`); the closed form's `1 + cos` cancels there, off by a
    # few float64 units of `initial`.
    near_end = np.float32([decay_steps - 1e-3, decay_steps])
    want = helpers.table(
        helpers.cosine_decay,
        near_end,
        initial=initial,
        decay_steps=decay_steps,
        final=final,
    )
    bound = slack + 4 * np.finfo(np.float64).eps * initial
    tolerance.assert_within(
        helpers.evaluate(schedule, near_end, dtype="float32"), want, bound
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"decay_steps": 0},
            r"Argument `decay_steps` must be an integer > 0\. Received: decay_steps=0",
        ),
        (
            {"decay_steps": 2.5},
            r"Argument `decay_steps` must be an integer > 0\. Received: decay_steps=2\.5",
        ),
        (
            {"initial_learning_rate": -0.1},
            r"Argument `initial_learning_rate` must be >= 0\. Received: initial_learning_rate=-0\.1",
        ),
        (
            {"final_learning_rate": 0.2},
            r"Argument `final_learning_rate` must be in \[0, 0\.1\]\. Received: final_learning_rate=0\.2",
        ),
        (
            {"final_learning_rate": -1e-3},
            r"Argument `final_learning_rate` must be in \[0, 0\.1\]",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    arguments = {"initial_learning_rate": 0.1, "decay_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        CosineDecay(**arguments)


@pytest.mark.smoke
def test_smoke_config_and_values():
    schedule = CosineDecay(0.1, 100, final_learning_rate=0.001)
    restored = assert_config_roundtrip(schedule)
    steps = [0, 25, 50, 99, 100, 150]
    want = helpers.table(
        helpers.cosine_decay, steps, initial=0.1, decay_steps=100, final=0.001
    )
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(schedule)
