"""Inverse square-root decay, constant over an initial timescale."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class InverseSqrtDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The rate decays as `1 / sqrt(t)` after `timescale` steps.

    The rule `lr(t) = lr_0 / sqrt(t)` without its singularity at `t = 0`, as
    used after the warm-up of the Transformer (Vaswani et al. 2017,
    arXiv:1706.03762) and in T5/big_vision (`rsqrt` schedules):

    ```
    lr(t) = initial_learning_rate * sqrt(timescale / max(t, timescale))
    ```

    The rate is `initial_learning_rate` up to step `timescale`, then
    `initial_learning_rate * sqrt(timescale / t)`; with `timescale=1` this is
    exactly `lr_0 / sqrt(t)` for `t >= 1`. Combine with `WarmUp` for the
    Transformer's warm-up then decay.

    Args:
        initial_learning_rate: float >= 0, the rate up to step `timescale`.
            Defaults to none (required).
        timescale: float > 0, the step at which the decay starts. Defaults to `1`.

    Example:

    >>> schedule = InverseSqrtDecay(0.1, timescale=100)
    >>> [round(float(schedule(s)), 6) for s in (0, 100, 400, 10000)]
    [0.1, 0.1, 0.05, 0.01]
    """

    def __init__(self, initial_learning_rate, timescale=1):
        super().__init__()
        self.initial_learning_rate = _validation.check_number(
            "initial_learning_rate", initial_learning_rate, low=0
        )
        self.timescale = _validation.check_number(
            "timescale", timescale, low=0, low_inclusive=False
        )

    def __call__(self, step):
        step = ops.maximum(_common.as_step(step), self.timescale)
        return self.initial_learning_rate * ops.sqrt(self.timescale / step)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "timescale": self.timescale,
        }
