import fractions
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import CyclicCosineDecay
from tests.helpers import schedules as helpers
from tests.helpers import tolerance
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip


def _exact_cycle_ends(cycle_steps, mult, count):
    ends, end, length = [], fractions.Fraction(0), fractions.Fraction(cycle_steps)
    for _ in range(count):
        end += length
        ends.append(end)
        length *= fractions.Fraction(repr(float(mult)))
    return ends


def _steps_around_cycle_ends(cycle_steps, mult, count):
    ends = _exact_cycle_ends(cycle_steps, mult, count)
    around = [math.floor(e) + d for e in ends for d in (-2, -1, 0, 1, 2)]
    grid = np.linspace(0, float(ends[-1]) + cycle_steps, 120).round()
    return np.unique(np.concatenate([grid, around, [0, 1]])).astype(np.int64)


CASES = [
    # initial, cycle_steps, final, mult, decay, cycles
    (0.1, 100, 0.0, 1.0, 1.0, 5),
    (0.1, 7, 1e-3, 1.0, 1.0, 9),
    (0.05, 10, 0.0, 2.0, 1.0, 6),
    (0.3, 3, 0.01, 3.0, 1.0, 7),
    (0.2, 4, 0.0, 1.5, 1.0, 10),
    (0.2, 10, 0.001, 1.1, 1.0, 25),
    (0.1, 10, 0.0, 2.0, 0.5, 5),
    (0.1, 20, 0.02, 1.0, 0.7, 8),
]


@pytest.mark.parametrize("initial, cycle_steps, final, mult, decay, cycles", CASES)
def test_matches_closed_form_at_every_cycle_end(
    initial, cycle_steps, final, mult, decay, cycles
):
    schedule = CyclicCosineDecay(initial, cycle_steps, final, mult, decay)
    steps = _steps_around_cycle_ends(cycle_steps, mult, cycles)
    want = helpers.table(
        helpers.cyclic_cosine_decay,
        steps,
        initial=initial,
        cycle_steps=cycle_steps,
        final=final,
        mult=mult,
        decay=decay,
    )
    if float(mult).is_integer() or mult == 1.5:
        helpers.assert_schedule_equals(schedule, steps, want)
    else:
        # Fractional cycle boundaries are float32 in-graph (see the docstring): a
        # boundary `end` made of ~2 log2(cycles) + 4 float32 products and sums is off
        # by that many units of EPS32 * end, which moves the rate by at most its
        # slope, (pi / 2) * initial / length per step, times that shift.
        ends = _exact_cycle_ends(cycle_steps, mult, cycles + 1)
        lengths = np.diff([0] + ends)
        roundings = 2 * math.log2(cycles) + 4
        shift = max(float(e / n) for e, n in zip(ends, lengths)) * roundings
        got = helpers.evaluate(schedule, steps, dtype="float32")
        bound = (
            helpers.RTOL * np.abs(want)
            + math.pi / 2 * shift * tolerance.EPS32 * initial
        )
        tolerance.assert_within(got, want, bound)


@pytest.mark.parametrize("initial, cycle_steps, final, mult, decay, cycles", CASES)
def test_cycle_end_steps_are_the_restarts(
    initial, cycle_steps, final, mult, decay, cycles
):
    schedule = CyclicCosineDecay(initial, cycle_steps, final, mult, decay)
    ends = schedule.cycle_end_steps(cycles)
    assert ends == [math.ceil(e) for e in _exact_cycle_ends(cycle_steps, mult, cycles)]
    assert all(type(e) is int for e in ends)
    before, at = helpers.evaluate(schedule, [[e - 1 for e in ends], ends])
    # Each restart jumps up, unless cycle_decay has brought the peak down to final.
    assert np.all((at > before) | (np.float32(at) == np.float32(final)))
    assert schedule.cycle_end_steps(0) == []


def test_large_step_counts_with_integer_mult():
    schedule = CyclicCosineDecay(1.0, 1, cycle_mult=2.0)
    ends = schedule.cycle_end_steps(24)
    steps = [s for e in ends[-4:] for s in (e - 1, e, e + 1)]
    want = helpers.table(
        helpers.cyclic_cosine_decay, steps, initial=1.0, cycle_steps=1, mult=2.0
    )
    helpers.assert_schedule_equals(schedule, np.array(steps), want)


@pytest.mark.parametrize(
    "cycle_steps, mult, eta_min", [(10, 1, 0.0), (5, 2, 0.001), (3, 3, 0.01)]
)
def test_equals_torch_cosine_annealing_warm_restarts(cycle_steps, mult, eta_min):
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=cycle_steps, T_mult=mult, eta_min=eta_min
    )
    want = []
    for _ in range(200):
        want.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    ours = CyclicCosineDecay(0.1, cycle_steps, eta_min, cycle_mult=float(mult))
    helpers.assert_matches(helpers.evaluate(ours, np.arange(200)), want)


@settings(max_examples=30, deadline=None)
@given(
    cycle_steps=st.integers(1, 5000),
    offset=st.integers(0, 4999),
    repeats=st.integers(1, 1000),
    fraction=st.floats(0.0, 1.0),
)
def test_equal_cycles_repeat_exactly(cycle_steps, offset, repeats, fraction):
    schedule = CyclicCosineDecay(0.1, cycle_steps, 0.1 * fraction)
    offset %= cycle_steps
    steps = [offset + k * cycle_steps for k in (0, 1, repeats)]
    values = helpers.evaluate(schedule, steps)
    assert values[0] == values[1] == values[2]


@settings(max_examples=30, deadline=None)
@given(
    cycle_steps=st.integers(1, 500),
    mult=st.floats(1.0, 3.0),
    decay=st.floats(0.3, 1.0),
    fraction=st.floats(0.0, 1.0),
)
def test_bounded_and_monotone_within_each_cycle(cycle_steps, mult, decay, fraction):
    schedule = CyclicCosineDecay(1.0, cycle_steps, fraction, mult, decay)
    ends = np.array(schedule.cycle_end_steps(4))
    # A fixed number of steps, so that JAX compiles the eager ops once.
    steps = np.floor(np.linspace(0, ends[-1] - 1, 400))
    values = helpers.evaluate(schedule, steps)
    rtol = helpers.RTOL  # relative to the peak rate 1.0, or to the floor
    assert np.all(values <= 1.0 + rtol) and np.all(values >= fraction * (1 - rtol))
    for previous, step, change in zip(steps[:-1], steps[1:], np.diff(values)):
        if not np.any((previous < ends) & (ends <= step)):
            assert change <= rtol, step


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"cycle_steps": 0},
            r"Argument `cycle_steps` must be an integer > 0\. Received: cycle_steps=0",
        ),
        (
            {"cycle_steps": 1.5},
            r"Argument `cycle_steps` must be an integer > 0\. Received: cycle_steps=1\.5",
        ),
        (
            {"initial_learning_rate": -1.0},
            r"Argument `initial_learning_rate` must be >= 0\. Received: initial_learning_rate=-1\.0",
        ),
        (
            {"final_learning_rate": 0.2},
            r"Argument `final_learning_rate` must be in \[0, 0\.1\]\. Received: final_learning_rate=0\.2",
        ),
        (
            {"cycle_mult": 0.5},
            r"Argument `cycle_mult` must be >= 1\. Received: cycle_mult=0\.5",
        ),
        (
            {"cycle_decay": 0.0},
            r"Argument `cycle_decay` must be in \(0, 1\]\. Received: cycle_decay=0\.0",
        ),
        (
            {"cycle_decay": 1.5},
            r"Argument `cycle_decay` must be in \(0, 1\]\. Received: cycle_decay=1\.5",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    arguments = {"initial_learning_rate": 0.1, "cycle_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        CyclicCosineDecay(**arguments)


def test_cycle_end_steps_rejects_a_negative_count():
    with pytest.raises(
        ValueError, match=r"Argument `num_cycles` must be an integer >= 0"
    ):
        CyclicCosineDecay(0.1, 10).cycle_end_steps(-1)


@pytest.mark.smoke
def test_smoke_config_and_values():
    schedule = CyclicCosineDecay(0.1, 10, 0.001, cycle_mult=2.0, cycle_decay=0.5)
    restored = assert_config_roundtrip(schedule)
    for name in (
        "cycle_steps",
        "cycle_mult",
        "cycle_decay",
        "initial_learning_rate",
        "final_learning_rate",
    ):
        assert getattr(restored, name) == getattr(schedule, name)
    assert restored.cycle_end_steps(3) == [10, 30, 70]
    steps = [0, 5, 9, 10, 29, 30, 69, 70, 100]
    want = helpers.table(
        helpers.cyclic_cosine_decay,
        steps,
        initial=0.1,
        cycle_steps=10,
        final=0.001,
        mult=2.0,
        decay=0.5,
    )
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(restored)
