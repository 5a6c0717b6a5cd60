"""Shared in-graph arithmetic of the schedules (private).

Every schedule evaluates in float32 with `keras.ops` only, elementwise, so that a
vector of steps gives a vector of rates. The formulas are arranged so that float32
keeps a relative error of a few units in the last place everywhere, in particular
where the cosine nears its floor (see `cosine_fraction`).
"""

import math

from keras import ops


def as_step(step):
    """The step (a Python number or an integer/float tensor) as float32, >= 0."""
    return ops.maximum(ops.cast(step, "float32"), 0.0)


def cosine_fraction(remaining):
    """`(1 + cos(pi * (1 - r))) / 2` for the remaining fraction `r` in [0, 1].

    The textbook form `(1 + cos(pi * t / T)) / 2` loses every digit near `t = T` in
    float32 (`1 + cos` of an angle close to pi cancels). The same value written as
    `sin(pi * r / 2) ** 2` with `r = (T - t) / T` keeps its relative precision there,
    since `T - t` is exact for integer steps.
    """
    half_angle = ops.sin(ops.multiply(math.pi / 2.0, remaining))
    return ops.square(half_angle)


def power_and_series_constants(ratio, num_bits):
    """Constants for `power_and_series`: `ratio ** 2**b` and its geometric sums.

    Computed in float64 by doubling (`G(2n) = G(n) (1 + r**n)`), which never
    subtracts, so integer or dyadic values come out exact.
    """
    powers, sums = [], []
    power, series = float(ratio), 1.0
    for _ in range(num_bits):
        powers.append(power)
        sums.append(series)
        series = series * (1.0 + power)
        power = power * power
    return powers, sums


def power_and_series(index, powers, sums):
    """`(r ** n, 1 + r + ... + r ** (n - 1))` for an integer-valued float32 `n >= 0`.

    Binary exponentiation over the bits of `n` with float32 products of the
    constants from `power_and_series_constants`: only additions and products of
    positive numbers, hence exact whenever the result is representable (integer
    `r`, or `r = 1.5` on dyadic step counts). `ops.power` is not: TensorFlow's eager
    kernel returns `3 ** 4 = 81.00001`.
    """
    power = ops.ones_like(index)
    series = ops.zeros_like(index)
    for bit, (bit_power, bit_sum) in enumerate(zip(powers, sums)):
        is_set = ops.equal(ops.mod(ops.floor(index / 2.0**bit), 2.0), 1.0)
        series = ops.where(is_set, series + power * bit_sum, series)
        power = ops.where(is_set, power * bit_power, power)
    return power, series
