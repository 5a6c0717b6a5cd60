"""Argument validation shared by every public class.

Messages follow Keras's form and always name the argument, the allowed range and the
value received, e.g. "Argument `beta_1` must be in [0, 1). Received: beta_1=1.5".
"""

import math
import numbers
import os

PACKAGE = "keras_trainplus"


def _describe(low, high, low_inclusive, high_inclusive):
    if low is not None and high is not None:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        return f"in {left}{low}, {high}{right}"
    if low is not None:
        return f">= {low}" if low_inclusive else f"> {low}"
    if high is not None:
        return f"<= {high}" if high_inclusive else f"< {high}"
    return "a finite number"


def check_number(
    name,
    value,
    low=None,
    high=None,
    *,
    low_inclusive=True,
    high_inclusive=True,
    integer=False,
):
    """Validates a real (or integer) scalar argument and returns it.

    Args:
        name: the argument's name, as the user wrote it.
        value: the value received.
        low, high: the bounds; `None` for unbounded.
        low_inclusive, high_inclusive: whether the bounds are allowed.
        integer: require an integer (bools are rejected).

    Returns:
        `value` as a Python `int` (when `integer`) or `float`.

    Raises:
        ValueError: naming the argument, the allowed range and the value received.
    """
    kind = "an integer " if integer else ""
    allowed = _describe(low, high, low_inclusive, high_inclusive)
    message = f"Argument `{name}` must be {kind}{allowed}. Received: {name}={value!r}"
    if isinstance(value, bool):
        raise ValueError(message)
    if integer:
        if not isinstance(value, numbers.Integral):
            if not (isinstance(value, numbers.Real) and float(value).is_integer()):
                raise ValueError(message)
        value = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise ValueError(message)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(message)
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(message)
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise ValueError(message)
    return value


def check_bool(name, value):
    """Validates a boolean argument (`True` or `False`, not `1`) and returns it."""
    if not isinstance(value, bool):
        raise ValueError(
            f"Argument `{name}` must be a bool. Received: {name}={value!r}"
        )
    return value


def check_path(name, value, optional=False):
    """Validates a path argument (a non-empty `str` or `os.PathLike`); returns a str.

    `None` is accepted (and returned) when `optional`. The `str` keeps configs
    JSON-serializable.
    """
    if value is None and optional:
        return None
    path = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(path, str) or not path:
        allowed = "a non-empty path (str or pathlib.Path)"
        if optional:
            allowed += " or None"
        raise ValueError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )
    return path


def check_choice(name, value, choices):
    """Validates that `value` is one of `choices` and returns it."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"Argument `{name}` must be one of {allowed}. Received: {name}={value!r}"
        )
    return value


def check_range_pair(
    name,
    value,
    low=None,
    high=None,
    *,
    low_inclusive=True,
    high_inclusive=True,
    allow_equal=True,
    form="a (min, max) pair",
):
    """Validates a `(min, max)` pair with `min <= max`, both between `low` and `high`.

    A single number `x` is accepted as `(-x, x)` when `low` allows negatives, else as
    `(0, x)`, the convention of Keras's preprocessing layers' factors (a caller for
    which a number means something else checks numbers itself, with `check_number`).

    Args:
        name: the argument's name, as the user wrote it.
        value: the value received.
        low, high: the bounds of both ends; `None` for unbounded.
        low_inclusive, high_inclusive: whether the bounds are allowed.
        allow_equal: whether `min == max` is allowed.
        form: what the caller accepts, as the message names it. Defaults to
            `"a (min, max) pair"`.

    Returns:
        The pair as a tuple of two floats.

    Raises:
        ValueError: naming the argument, the allowed range and the value received.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        x = float(value)
        value = (-abs(x), abs(x)) if (low is None or low < 0) else (0.0, x)
    order = "<=" if allow_equal else "<"
    message = (
        f"Argument `{name}` must be {form} with min {order} max, both "
        f"{_describe(low, high, low_inclusive, high_inclusive)}. "
        f"Received: {name}={value!r}"
    )
    try:
        lo, hi = value
        if isinstance(lo, bool) or isinstance(hi, bool):
            raise TypeError
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    inverted = lo > hi or (lo == hi and not allow_equal)
    outside = low is not None and (lo < low or (lo == low and not low_inclusive))
    if high is not None and (hi > high or (hi == high and not high_inclusive)):
        outside = True
    if inverted or outside or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(message)
    return (lo, hi)
