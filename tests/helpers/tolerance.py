"""Tolerances that follow from float32 rounding, relative to the scale of a tensor.

A float32 operation rounds its exact result to the nearest float32, an error of at
most `EPS32 / 2` relative to that result (`EPS32 = 2**-23`, the spacing of float32
numbers in `[1, 2)`). A computation of a few operations on values of magnitude
`scale` therefore ends within `ulps * EPS32 * scale` of the exact result, `ulps`
counting the roundings on the way (a sum of `n` terms: `n - 1` additions). Which
roundings happen where (fused multiply-add, vector width, the order of a reduction,
the number of threads) changes from one CPU and one library build to another; the
bound holds for all of them because it only counts roundings.

The bound is absolute and per tensor: an element near zero (a cancellation, a weight
crossing zero) carries the rounding error of the operands it was computed from,
which is relative to the tensor's scale, not to its own value. Element-wise `rtol`
fails there on one machine and passes on another.

`assert_close(actual, desired, ulps)` checks one tensor; `tests/helpers/optim.py`
builds the trajectory comparison on `assert_within`. Each test states how it
counted its `ulps`.

When the environment variable `KTP_TOLERANCE_LOG` names a file, every check that
passes appends a line `test<TAB>worst error / bound` to it: `.ci/portability` reads these to report
how much headroom each bound keeps on each variant of the arithmetic.
"""

import os

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def scale_of(*tensors):
    """The largest magnitude in the given tensors (at least the smallest normal)."""
    return max(
        float(np.finfo(np.float32).tiny),
        *(float(np.max(np.abs(np.asarray(t, np.float64)), initial=0)) for t in tensors),
    )


def float32_bound(ulps, *tensors):
    """`ulps * EPS32 * scale_of(*tensors)`: `ulps` float32 roundings at that scale."""
    return ulps * EPS32 * scale_of(*tensors)


def sampling_ulps(max_coordinate):
    """Units of EPS32, at the image's scale, that a float32 image sampler may be off.

    Mapping an output pixel to its source point `c` (affine map, distortion, crop
    box; folding by reflect, wrap or clamp) takes a few float32 operations, each
    off by half a unit of |c|: the read point moves by up to ~4 |c| EPS32 pixels,
    which moves a bilinear value by that times the largest step between neighbours
    (at most the image's scale). The interpolation itself (`a + f (b - a)` per axis:
    the weight, a difference, a product and a sum, twice) adds ~6 units.
    `max_coordinate` is the largest |c| (in pixels) the test samples.

    A nearest read is not covered: it moves a whole pixel when the exact point lies
    within that distance of a half-integer. Nearest reads are compared where the
    coordinates are inputs (one rounding of `c + 0.5`, the same on every CPU) or
    where the test counts the reads that moved.
    """
    return 4 * float(max_coordinate) + 6


def network_ulps(*fan_ins):
    """Units of EPS32, at the scale of its outputs, between two float32 evaluations
    of one network (fused or not, other kernels, other reduction orders).

    A dot product of length `n` is within `n EPS32 / 2 * |w|.|x|` of the exact one
    whatever the order of its sum, so two evaluations differ by `n` units of
    `|w|.|x|`, which a factor 2 relates to the scale of the layer's outputs for the
    small Glorot-initialised layers of the tests; the bias and the activation (slope
    <= 1: tanh, relu, sigmoid, softmax) add 2 more. The layers' errors add up along
    the network. `fan_ins` lists each layer's fan-in (a convolution's is
    `kernel height * kernel width * input channels`).
    """
    return sum(2 * n + 2 for n in fan_ins)


def training_bound(weights, steps, fan_in, adam_lr=None, beta_2=0.999):
    """How far `steps` float32 training steps may leave `weights` from exact.

    A gradient made of `fan_in`-term sums is off by ~`fan_in` units of EPS32
    relative to itself, which the step inherits, and each update rounds once at the
    weights' scale: with SGD-like steps (smaller than the weights), `fan_in + 1`
    units of the weights' scale per step. An Adam-like step is ~`adam_lr` whatever
    the gradient's scale, so its error is absolute: `adam_lr * fan_in` units, plus
    the cancellation in the bias correction `sqrt(1 - beta_2^t)`, which loses
    `beta_2^t / (1 - beta_2^t) / 2` units at step t. Two float32 runs may be twice
    as far from each other.
    """
    if adam_lr is None:
        return float32_bound(steps * (fan_in + 1), weights)
    cancellation = sum(beta_2**t / (1 - beta_2**t) / 2 for t in range(1, steps + 1))
    absolute = adam_lr * (steps * fan_in + cancellation)
    return float32_bound(absolute, 1.0) + float32_bound(steps, weights)


def assert_close(actual, desired, ulps, scale=None, err_msg=""):
    """Asserts `max |actual - desired| <= ulps * EPS32 * scale`.

    Args:
        actual: the computed tensor.
        desired: the expected tensor (float64 reference, or another float32 result).
        ulps: number of float32 roundings the comparison allows, counted by the test.
        scale: tensor(s) whose largest magnitude sets the scale: the operands of the
            computation when it cancels. Defaults to `desired`.
        err_msg: prefix of the failure message.
    """
    scales = (desired,) if scale is None else (scale,)
    assert_within(actual, desired, float32_bound(ulps, *scales), err_msg)


def assert_within(actual, desired, bound, err_msg=""):
    """Asserts `|actual - desired| <= bound` (a number, or one per element).

    The failure names the worst element (largest error / bound).
    """
    actual = np.asarray(actual, np.float64)
    desired = np.broadcast_to(np.asarray(desired, np.float64), actual.shape)
    finite = np.isfinite(desired)
    if not np.array_equal(np.isfinite(actual), finite) or not np.array_equal(
        actual[~finite], desired[~finite], equal_nan=True
    ):
        raise AssertionError(f"{err_msg}: non-finite values differ")
    bound = np.broadcast_to(np.asarray(bound, np.float64), desired.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(finite, np.abs(actual - desired), 0.0)
        ratios = np.where(error == 0, 0.0, error / bound)
    worst = float(np.max(ratios, initial=0.0))
    if worst <= 1:  # a failing check is reported by its test
        record(worst)
    if worst > 1:
        index = np.unravel_index(np.argmax(ratios), ratios.shape)
        raise AssertionError(
            f"{err_msg}: |actual - desired| = {error[index]:.3g} > bound "
            f"{bound[index]:.3g} ({worst:.3g} x) at index "
            f"{tuple(int(i) for i in index)}: {float(actual[index])!r} (actual), "
            f"{float(desired[index])!r} (desired)"
        )


def record(ratio):
    path = os.environ.get("KTP_TOLERANCE_LOG")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        with open(path, "a") as log:
            log.write(f"{test}\t{ratio:.6g}\n")
