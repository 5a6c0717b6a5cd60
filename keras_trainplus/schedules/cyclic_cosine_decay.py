"""Cosine annealing with warm restarts (SGDR, Snapshot Ensembles)."""

import fractions
import math

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common

# Step counts up to the range of the int32 iteration counter of JAX.
_MAX_STEP = 2.0**31
# A cycle boundary this close (relatively) to a whole step is that whole step: the
# float32 rounding of a boundary such as 10 + 11 = 21 (cycle_mult=1.1) must not move
# the restart by a step.
_SNAP = 2.0**-20


def _snap(boundary):
    """In-graph: a float32 cycle boundary within `_SNAP` of a whole step, rounded."""
    whole = ops.round(boundary)
    return ops.where(ops.abs(boundary - whole) <= _SNAP * boundary, whole, boundary)


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class CyclicCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay restarted at the end of each cycle, cycles growing geometrically.

    SGDR (Loshchilov & Hutter 2017, arXiv:1608.03983) and the schedule of Snapshot
    Ensembles (Huang et al. 2017, arXiv:1704.00109). Cycle `i = 0, 1, ...` lasts
    `T_i = cycle_steps * cycle_mult ** i` steps and starts at
    `S_i = T_0 + ... + T_(i-1)`; within it, with `t_i = t - S_i`:

    ```
    peak_i = max(initial * cycle_decay ** i, final)
    lr(t)  = final + (peak_i - final) * (1 + cos(pi * t_i / T_i)) / 2
    ```

    With equal cycles this is `initial / 2 * (cos(pi * mod(t, T) / T) + 1)` for
    `final = 0`. For an integer `cycle_mult` and `cycle_decay=1` it equals PyTorch's
    `CosineAnnealingWarmRestarts(T_0=cycle_steps, T_mult=cycle_mult,
    eta_min=final_learning_rate)` at every step. A non-integer `cycle_mult` gives
    cycles of fractional length, as in timm's `CosineLRScheduler(cycle_mul=...)`;
    `cycle_decay` scales each cycle's peak as timm's `cycle_decay` does, except
    that the peak never falls below `final_learning_rate` (timm's would, turning
    the cosine upside down).

    The rate restarts exactly at the steps `cycle_end_steps` returns when the
    cycle boundaries are integers (steps up to `2 ** 24`). With a non-integer
    `cycle_mult` the boundaries are fractional and carried in float32, so close
    to such a fractional cycle end the rate is off by up to about
    `1e-5 * initial_learning_rate`; integer and dyadic boundaries are exact.

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017 (arXiv:1608.03983).
        Huang, Li, Pleiss, Liu, Hopcroft & Weinberger, "Snapshot Ensembles: Train
        1, Get M for Free", ICLR 2017 (arXiv:1704.00109).

    Args:
        initial_learning_rate: float >= 0, the rate at the start of the first cycle.
            Defaults to none (required).
        cycle_steps: integer > 0, the length `T_0` of the first cycle. Defaults to
            none (required).
        final_learning_rate: float in [0, initial_learning_rate], the rate at the end
            of every cycle. Defaults to `0.0`.
        cycle_mult: float >= 1, the growth factor of the cycle length. Defaults to
            `1.0` (equal cycles).
        cycle_decay: float in (0, 1], the factor applied to the peak rate at each
            restart. Defaults to `1.0`.

    Example:

    >>> schedule = CyclicCosineDecay(0.1, cycle_steps=100, cycle_mult=2.0)
    >>> schedule.cycle_end_steps(3)
    [100, 300, 700]
    >>> [round(float(schedule(s)), 6) for s in (0, 50, 99, 100, 200, 300)]
    [0.1, 0.05, 2.5e-05, 0.1, 0.05, 0.1]
    """

    def __init__(
        self,
        initial_learning_rate,
        cycle_steps,
        final_learning_rate=0.0,
        cycle_mult=1.0,
        cycle_decay=1.0,
    ):
        super().__init__()
        self.initial_learning_rate = _validation.check_number(
            "initial_learning_rate", initial_learning_rate, low=0
        )
        self.cycle_steps = _validation.check_number(
            "cycle_steps", cycle_steps, low=0, low_inclusive=False, integer=True
        )
        self.final_learning_rate = _validation.check_number(
            "final_learning_rate",
            final_learning_rate,
            low=0,
            high=self.initial_learning_rate,
        )
        self.cycle_mult = _validation.check_number("cycle_mult", cycle_mult, low=1)
        self.cycle_decay = _validation.check_number(
            "cycle_decay", cycle_decay, low=0, high=1, low_inclusive=False
        )
        if self.cycle_mult == 1.0:
            largest_index = math.floor(_MAX_STEP / self.cycle_steps)
        else:
            largest_index = math.floor(
                math.log1p(_MAX_STEP / self.cycle_steps * (self.cycle_mult - 1.0))
                / math.log(self.cycle_mult)
            )
        self._largest_base = float(largest_index)
        num_bits = max(1, (largest_index + 3).bit_length())
        self._mult_constants = _common.power_and_series_constants(
            self.cycle_mult, num_bits
        )
        self._decay_constants = _common.power_and_series_constants(
            self.cycle_decay, num_bits
        )

    def _cycle_index_estimate(self, step):
        """Closed-form cycle index, off by at most one near the boundaries."""
        ratio = step / float(self.cycle_steps)
        if self.cycle_mult == 1.0:
            return ops.floor(ratio)
        scaled = ratio * (self.cycle_mult - 1.0)
        return ops.floor(ops.log1p(scaled) / math.log(self.cycle_mult))

    def cycle_end_steps(self, num_cycles):
        """The steps at which each of the first `num_cycles` cycles ends.

        Cycle `i` ends, and the rate restarts, at step
        `cycle_steps * (1 + cycle_mult + ... + cycle_mult ** i)`. For a non-integer
        `cycle_mult` this sum may be fractional; the step returned is then the
        first whole step of the next cycle (the sum rounded up), except that a sum
        within a relative `2 ** -20` of a whole step is that step (so that
        `cycle_mult=1.1`, whose binary value makes `10 + 11` a hair above 21,
        restarts at step 21 both here and in-graph).

        Args:
            num_cycles: integer >= 0.

        Returns:
            A list of `num_cycles` Python ints.
        """
        num_cycles = _validation.check_number(
            "num_cycles", num_cycles, low=0, integer=True
        )
        mult = fractions.Fraction(self.cycle_mult)
        length = fractions.Fraction(self.cycle_steps)
        end, ends = fractions.Fraction(0), []
        for _ in range(num_cycles):
            end += length
            whole = round(end)
            ends.append(whole if abs(end - whole) <= _SNAP * end else math.ceil(end))
            length *= mult
        return ends

    def __call__(self, step):
        step = _common.as_step(step)
        mult = self.cycle_mult
        # The cycle index comes in-graph from the closed form
        # `i = floor(log(1 + t (m - 1) / T_0) / log(m))`, then is corrected against
        # the cycle starts, computed without subtraction (`power_and_series`) so
        # that integer cycle boundaries are exact in float32 (steps are exact up to
        # 2 ** 24; fractional boundaries carry a relative error of about 1e-7).
        # The true index is estimate - 1, estimate or estimate + 1: start one below
        # and count the (up to two) cycle starts at or before `step`.
        base = ops.clip(self._cycle_index_estimate(step) - 1.0, 0.0, self._largest_base)
        if mult == 1.0:
            power, series = ops.ones_like(base), base
        else:
            power, series = _common.power_and_series(base, *self._mult_constants)
        cycle_steps = float(self.cycle_steps)
        start_1 = _snap(cycle_steps * (series + power))
        start_2 = _snap(cycle_steps * (series + power + power * mult))
        start_3 = _snap(
            cycle_steps * (series + power + power * mult + power * mult * mult)
        )
        past_1 = ops.greater_equal(step, start_1)
        past_2 = ops.greater_equal(step, start_2)
        cycle_end = ops.where(past_2, start_3, ops.where(past_1, start_2, start_1))
        length = cycle_steps * ops.where(
            past_2, power * mult * mult, ops.where(past_1, power * mult, power)
        )
        progress = _common.cosine_fraction((cycle_end - step) / length)

        peak = ops.full_like(step, self.initial_learning_rate)
        if self.cycle_decay != 1.0:
            decay, _ = _common.power_and_series(base, *self._decay_constants)
            decay = decay * ops.where(
                past_2,
                self.cycle_decay**2,
                ops.where(past_1, self.cycle_decay, 1.0),
            )
            peak = ops.maximum(peak * decay, self.final_learning_rate)
        return self.final_learning_rate + (peak - self.final_learning_rate) * progress

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "cycle_steps": self.cycle_steps,
            "final_learning_rate": self.final_learning_rate,
            "cycle_mult": self.cycle_mult,
            "cycle_decay": self.cycle_decay,
        }
