"""Schedule test utilities: float64 closed forms and in-graph evaluation.

The closed forms here are written from the papers' and reference libraries'
equations, independently of `keras_trainplus.schedules` (no shared code), in float64
NumPy, one step at a time (exact fractions where cycle boundaries are concerned).
"""

import fractions
import math

import keras
import numpy as np

from tests.helpers import tolerance
from tests.helpers.backend import BACKEND
from tests.helpers.backend import in_mode

# Relative error of a schedule value against its float64 closed form. Every schedule
# evaluates elementwise in float32 without cancellation (`schedules/_common.py`), so
# each value has its own relative precision: the step fraction (one division, exact
# `T - t`), the angle (one product), `sin` (about one unit of its own, plus the
# angle's), its square (doubling that), the amplitude product and the floor's sum,
# about 6 units of `EPS32` in all, whatever the CPU's `sin` kernel; 8 leaves room.
RTOL = 8 * tolerance.EPS32


def step_decay(t, initial, boundary_steps, decay_rate):
    passed = sum(1 for b in boundary_steps if t >= b)
    return initial * decay_rate**passed


def cosine_decay(t, initial, decay_steps, final=0.0):
    t = min(t, decay_steps)
    return final + (initial - final) * 0.5 * (1.0 + math.cos(math.pi * t / decay_steps))


def linear_decay(t, initial, decay_steps, final=0.0):
    t = min(t, decay_steps)
    return initial + (final - initial) * t / decay_steps


def inverse_sqrt_decay(t, initial, timescale=1.0):
    return initial / math.sqrt(max(t, timescale) / timescale)


def warm_up(t, inner, warmup_steps, initial=0.0, shape="linear"):
    """`inner` is a float64 closed form of the wrapped schedule (a function of t)."""
    if t >= warmup_steps:
        return inner(t - warmup_steps)
    x = t / warmup_steps
    if shape == "cosine":
        x = 0.5 * (1.0 - math.cos(math.pi * x))
    return initial + (inner(0) - initial) * x


def cyclic_cosine_decay(t, initial, cycle_steps, final=0.0, mult=1.0, decay=1.0):
    """SGDR: walks the cycles with exact rational boundaries (`mult` read as the
    decimal the user wrote: 1.1 is 11/10)."""
    start, length, index = fractions.Fraction(0), fractions.Fraction(cycle_steps), 0
    exact_t = fractions.Fraction(t)
    while exact_t >= start + length:
        start += length
        length *= fractions.Fraction(repr(float(mult)))
        index += 1
    peak = max(initial * decay**index, final)
    x = float((exact_t - start) / length)
    # (1 + cos(pi x)) / 2 as cos(pi x / 2) ** 2: float64 `1 + cos` would cancel
    # below the rtol for cycles of ~1e6 steps.
    return final + (peak - final) * math.cos(math.pi * x / 2.0) ** 2


def one_cycle(t, max_lr, total_steps, pct_start, div_factor, final_div_factor, anneal):
    """Smith & Topin's two-phase one-cycle with PyTorch's step indexing."""
    lr_0 = max_lr / div_factor
    lr_min = lr_0 / final_div_factor
    end_1, end_2 = pct_start * total_steps - 1.0, total_steps - 1.0
    t = min(t, end_2)
    if t <= end_1:
        start, end, x = lr_0, max_lr, t / end_1
    else:
        start, end, x = max_lr, lr_min, (t - end_1) / (end_2 - end_1)
    if anneal == "linear":
        return start + (end - start) * x
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * x))


def table(closed_form, steps, **kwargs):
    return np.array([closed_form(float(s), **kwargs) for s in steps], dtype=np.float64)


def step_dtypes():
    """Integer and float step dtypes the optimizer or a user may pass."""
    if BACKEND == "tensorflow":
        return ["int32", "int64", "float32"]
    if BACKEND == "jax":
        return ["int32", "float32"]
    return ["int32", "int64", "float32"]


def evaluate(schedule, steps, mode="eager", dtype="int32"):
    """The schedule on a vector of steps, run in `mode`, as float64 NumPy."""
    steps = keras.ops.convert_to_tensor(np.asarray(steps), dtype=dtype)
    values = in_mode(lambda s: schedule(s), mode)(steps)
    return np.asarray(keras.ops.convert_to_numpy(values), dtype=np.float64)


def evaluate_scalars(schedule, steps, mode="eager", dtype="int32"):
    """The schedule called once per scalar step (as the optimizer calls it)."""
    fn = in_mode(lambda s: schedule(s), mode)
    values = [fn(keras.ops.convert_to_tensor(s, dtype=dtype)) for s in steps]
    return np.array([float(keras.ops.convert_to_numpy(v)) for v in values])


def assert_matches(got, want, rtol=RTOL):
    """Each value within `rtol` of its own magnitude (see `RTOL`)."""
    want = np.asarray(want, np.float64)
    tolerance.assert_within(got, want, rtol * np.abs(want), "schedule values")


def assert_traced_once(schedule, steps=range(0, 50, 7)):
    """Under TensorFlow, calling with new step values must not retrace."""
    import tensorflow as tf

    fn = tf.function(lambda s: schedule(s))
    for dtype in ("int64", "float32"):
        for s in steps:
            fn(tf.constant(s, dtype=dtype))
    assert fn.experimental_get_tracing_count() == 2, fn.experimental_get_tracing_count()


def assert_schedule_equals(schedule, steps, want, rtol=RTOL):
    """Vector steps of every dtype eagerly and of the optimizer's iteration dtype in
    every compiled mode, scalar tensor steps compiled, Python ints and floats."""
    from tests.helpers.backend import function_modes

    for dtype in step_dtypes():
        assert_matches(evaluate(schedule, steps, "eager", dtype), want, rtol)
    iteration_dtype = "int64" if BACKEND == "tensorflow" else "int32"
    for mode in function_modes()[1:]:
        assert_matches(evaluate(schedule, steps, mode, iteration_dtype), want, rtol)
    some = list(range(0, len(steps), max(1, len(steps) // 4)))
    picked = [int(steps[i]) for i in some]
    assert_matches(
        evaluate_scalars(schedule, picked, function_modes()[-1], iteration_dtype),
        want[some],
        rtol,
    )
    for convert in (int, float):
        got = [float(keras.ops.convert_to_numpy(schedule(convert(s)))) for s in picked]
        assert_matches(np.array(got), want[some], rtol)
