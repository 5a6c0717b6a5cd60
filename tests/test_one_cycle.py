import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_trainplus.schedules import OneCycle
from tests.helpers import schedules as helpers
from tests.helpers.backend import BACKEND
from tests.helpers.config import assert_config_roundtrip

CASES = [
    # max_lr, total_steps, pct_start, div_factor, final_div_factor, anneal
    (0.1, 1000, 0.25, 25.0, 1e4, "cos"),
    (0.1, 1000, 0.25, 25.0, 1e4, "linear"),
    (1.0, 37, 0.3, 10.0, 100.0, "cos"),
    (3e-3, 101, 0.5, 1.0, 1.0, "cos"),
    (0.5, 10, 0.15, 4.0, 2.0, "linear"),
]


def _steps(total_steps, pct_start):
    junction = pct_start * total_steps - 1
    special = [0, 1, np.floor(junction), np.ceil(junction), np.ceil(junction) + 1]
    special += [total_steps - 2, total_steps - 1, total_steps, 3 * total_steps]
    grid = np.linspace(0, total_steps, 80).round()
    return np.unique(np.concatenate([grid, special])).astype(np.int64)


@pytest.mark.parametrize("max_lr, total, pct, div, final_div, anneal", CASES)
def test_matches_closed_form(max_lr, total, pct, div, final_div, anneal):
    schedule = OneCycle(max_lr, total, pct, div, final_div, anneal)
    steps = _steps(total, pct)
    want = helpers.table(
        helpers.one_cycle,
        steps,
        max_lr=max_lr,
        total_steps=total,
        pct_start=pct,
        div_factor=div,
        final_div_factor=final_div,
        anneal=anneal,
    )
    helpers.assert_schedule_equals(schedule, steps, want)


@pytest.mark.parametrize("max_lr, total, pct, div, final_div, anneal", CASES)
def test_equals_torch_one_cycle_lr(max_lr, total, pct, div, final_div, anneal):
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([parameter], lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total,
        pct_start=pct,
        anneal_strategy=anneal,
        div_factor=div,
        final_div_factor=final_div,
        three_phase=False,
        cycle_momentum=False,
    )
    want = []
    for _ in range(total):
        want.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if len(want) < total:
            scheduler.step()
    ours = OneCycle(max_lr, total, pct, div, final_div, anneal)
    helpers.assert_matches(helpers.evaluate(ours, np.arange(total)), want)


@settings(max_examples=30, deadline=None)
@given(
    total=st.integers(20, 10**6),
    pct=st.floats(0.1, 0.9),
    div=st.floats(1.0, 100.0),
    final_div=st.floats(1.0, 1e5),
    anneal=st.sampled_from(["cos", "linear"]),
)
def test_bounded_rises_then_falls_and_continuous_at_the_peak(
    total, pct, div, final_div, anneal
):
    schedule = OneCycle(1.0, total, pct, div, final_div, anneal)
    peak = pct * total - 1
    steps = np.sort(np.concatenate([np.linspace(0, total + 5, 101), [peak]]))
    values = helpers.evaluate(schedule, steps, dtype="float32")
    lowest = 1.0 / div / final_div
    rtol = helpers.RTOL  # relative to the peak rate 1.0, or to the lowest rate
    assert np.all(values <= 1.0 + rtol) and np.all(values >= lowest * (1 - rtol))
    rising = np.diff(values[steps <= peak])
    falling = np.diff(values[steps >= peak])
    assert np.all(rising >= -rtol) and np.all(falling <= rtol)
    # No jump at the peak: just before, at and just after it, the values are those
    # of the (continuous) closed form at the same float32 steps, within RTOL.
    around = np.float32([peak - 1e-3, peak, peak + 1e-3])
    want = helpers.table(
        helpers.one_cycle,
        around,
        max_lr=1.0,
        total_steps=total,
        pct_start=pct,
        div_factor=div,
        final_div_factor=final_div,
        anneal=anneal,
    )
    helpers.assert_matches(helpers.evaluate(schedule, around, dtype="float32"), want)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"total_steps": 0},
            r"Argument `total_steps` must be an integer > 1\. Received: total_steps=0",
        ),
        (
            {"total_steps": 1},
            r"Argument `total_steps` must be an integer > 1\. Received: total_steps=1",
        ),
        (
            {"pct_start": 0.0},
            r"Argument `pct_start` must be in \(0, 1\)\. Received: pct_start=0\.0",
        ),
        (
            {"pct_start": 1.0},
            r"Argument `pct_start` must be in \(0, 1\)\. Received: pct_start=1\.0",
        ),
        (
            {"pct_start": 0.005},
            r"Argument `pct_start` must be > 1 / total_steps = 0\.01 so that the warm-up spans more than one step\. Received: pct_start=0\.005",
        ),
        (
            {"max_learning_rate": -0.1},
            r"Argument `max_learning_rate` must be >= 0\. Received: max_learning_rate=-0\.1",
        ),
        (
            {"div_factor": 0.5},
            r"Argument `div_factor` must be >= 1\. Received: div_factor=0\.5",
        ),
        (
            {"final_div_factor": 0.0},
            r"Argument `final_div_factor` must be >= 1\. Received: final_div_factor=0\.0",
        ),
        (
            {"anneal": "cosine"},
            r"Argument `anneal` must be one of 'cos', 'linear'\. Received: anneal='cosine'",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    arguments = {"max_learning_rate": 0.1, "total_steps": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        OneCycle(**arguments)


@pytest.mark.smoke
def test_smoke_config_and_values():
    schedule = OneCycle(0.1, 100, pct_start=0.3, anneal="linear")
    restored = assert_config_roundtrip(schedule)
    steps = [0, 10, 29, 30, 60, 99, 100]
    want = helpers.table(
        helpers.one_cycle,
        steps,
        max_lr=0.1,
        total_steps=100,
        pct_start=0.3,
        div_factor=25.0,
        final_div_factor=1e4,
        anneal="linear",
    )
    helpers.assert_matches(helpers.evaluate(restored, steps), want)
    if BACKEND == "tensorflow":
        helpers.assert_traced_once(restored)
