"""Turns the helpers' range arguments into KerasTuner hyperparameters.

Every numeric argument of a helper (`learning_rate`, `rate`, `alpha`, ...) accepts:

- a `(min, max)` pair: searched. Without `grid_size` it is a continuous
  `hp.Float(min, max, sampling=...)`; with `grid_size=n` it is an ordered
  `hp.Choice` of `n` points from `min` to `max`, both ends included, spaced evenly
  on the sampling's scale (geometrically for `"log"`), so that
  `keras_tuner.GridSearch` visits exactly those `n` values.
- a single number: not searched; recorded as `hp.Fixed`, so it still shows in
  every trial's summary.
"""

import numbers

import numpy as np

from keras_trainplus._validation import check_choice
from keras_trainplus._validation import check_number
from keras_trainplus._validation import check_range_pair


def check_choices(argument, values, allowed):
    """Validates a non-empty selection from `allowed` (one name or a sequence).

    Returns the selection as a tuple, in the user's order.
    """
    values = (values,) if isinstance(values, str) else tuple(values)
    names = ", ".join(repr(a) for a in allowed)
    if not values:
        raise ValueError(
            f"Argument `{argument}` must name at least one of {names}. "
            f"Received: {argument}=()"
        )
    for value in values:
        check_choice(argument, value, allowed)
    if len(set(values)) != len(values):
        raise ValueError(
            f"Argument `{argument}` must not repeat a name. "
            f"Received: {argument}={values!r}"
        )
    return values


def check_grid_size(grid_size):
    """Validates the `grid_size` argument shared by the helpers."""
    if grid_size is None:
        return None
    return check_number("grid_size", grid_size, 2, integer=True)


def check_range(
    argument,
    value,
    *,
    low,
    high=None,
    low_inclusive=True,
    high_inclusive=True,
    sampling="linear",
):
    """Validates a number or a `(min, max)` pair against the allowed interval.

    The arguments are those of `register_float`.

    Returns a float for a number and a pair of floats for a pair.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return check_number(
            argument,
            value,
            low,
            high,
            low_inclusive=low_inclusive,
            high_inclusive=high_inclusive,
        )
    # A searched log-scale range needs min > 0, whatever the helper's own lower
    # bound is (a fixed weight decay of 0 is fine, a log range starting at 0 is not).
    return check_range_pair(
        argument,
        value,
        low,
        high,
        low_inclusive=low_inclusive and (sampling != "log" or low > 0),
        high_inclusive=high_inclusive,
        form="a number or a (min, max) pair",
    )


def grid_values(low, high, grid_size, sampling):
    """`grid_size` points from `low` to `high` inclusive, evenly spaced on the scale.

    The ends are `low` and `high` exactly; the points between are rounded to 6
    significant digits, which only removes floating-point noise such as
    `0.30000000000000004` from the displayed grid.
    """
    if sampling == "log":
        points = np.geomspace(low, high, grid_size)
    else:
        points = np.linspace(low, high, grid_size)
    inner = [float(f"{p:.6g}") for p in points[1:-1]]
    return [float(low)] + inner + [float(high)]


def register_float(
    hp,
    name,
    value,
    *,
    argument,
    low,
    high=None,
    low_inclusive=True,
    high_inclusive=True,
    sampling="linear",
    grid_size=None,
):
    """Validates `value` and registers it in `hp` as `name`; returns the current value.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        name: the hyperparameter's name in the search space.
        value: a number (fixed) or a `(min, max)` pair (searched).
        argument: the helper's argument name, used in error messages.
        low: the smallest value the helper accepts.
        high: the largest value the helper accepts, `None` for unbounded.
        low_inclusive: whether `low` itself is allowed (never at 0 in a searched
            log-scale range).
        high_inclusive: whether `high` itself is allowed.
        sampling: `"linear"` (uniform) or `"log"` (log-uniform).
        grid_size: `None` for a continuous range, or the number of grid points.

    Returns:
        The hyperparameter's value in `hp` (`None` when inactive in a conditional
        scope).
    """
    checked = check_range(
        argument,
        value,
        low=low,
        high=high,
        low_inclusive=low_inclusive,
        high_inclusive=high_inclusive,
        sampling=sampling,
    )
    if isinstance(checked, float):
        return hp.Fixed(name, checked)
    lo, hi = checked
    if lo == hi:
        return hp.Fixed(name, lo)
    if grid_size is not None:
        return hp.Choice(name, grid_values(lo, hi, grid_size, sampling), ordered=True)
    return hp.Float(name, lo, hi, sampling=sampling)


def register_choice(hp, name, values):
    """Registers a choice among `values`, as `hp.Fixed` when there is only one."""
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, list(values))


def register_learning_rate(hp, value, grid_size):
    """Registers `learning_rate`: a range searched log-uniformly or a fixed rate > 0."""
    return register_float(
        hp,
        "learning_rate",
        value,
        argument="learning_rate",
        low=0,
        low_inclusive=False,
        sampling="log",
        grid_size=grid_size,
    )
