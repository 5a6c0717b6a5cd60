"""Shared machinery of the decays from an initial to a final rate over T steps."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common


class FiniteDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`final + (initial - final) * profile((T - min(t, T)) / T)` (private base).

    Subclasses define `profile`, a map of the remaining fraction `[0, 1]` onto
    `[0, 1]` with `profile(0) = 0` and `profile(1) = 1`.
    """

    def __init__(self, initial_learning_rate, decay_steps, final_learning_rate=0.0):
        super().__init__()
        self.initial_learning_rate = _validation.check_number(
            "initial_learning_rate", initial_learning_rate, low=0
        )
        self.decay_steps = _validation.check_number(
            "decay_steps", decay_steps, low=0, low_inclusive=False, integer=True
        )
        self.final_learning_rate = _validation.check_number(
            "final_learning_rate",
            final_learning_rate,
            low=0,
            high=self.initial_learning_rate,
        )

    def __call__(self, step):
        step = ops.minimum(_common.as_step(step), float(self.decay_steps))
        remaining = (float(self.decay_steps) - step) / float(self.decay_steps)
        amplitude = self.initial_learning_rate - self.final_learning_rate
        return self.final_learning_rate + amplitude * self.profile(remaining)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "final_learning_rate": self.final_learning_rate,
        }
