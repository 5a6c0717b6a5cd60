"""Linear decay from an initial to a final learning rate over a fixed number of steps."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A straight line from `initial_learning_rate` down to `final_learning_rate`.

    The lecture's `lr(t) = lr_0 (1 - t / T)` with a floor. With `T = decay_steps`:

    ```
    lr(t) = final + (initial - final) * (T - min(t, T)) / T
    ```

    so the rate reaches `final_learning_rate` at step `T` and stays there. This is
    optax's `linear_schedule(initial, final, transition_steps=T)` and Keras's
    `PolynomialDecay(initial, T, final, power=1.0)`.

    Args:
        initial_learning_rate: float >= 0, the rate at step 0. Defaults to none
            (required).
        decay_steps: integer > 0, the number of steps of the decay `T`. Defaults to
            none (required).
        final_learning_rate: float in [0, initial_learning_rate], the rate from
            step `T` on. Defaults to `0.0`.

    Example:

    >>> schedule = LinearDecay(0.1, decay_steps=100)
    >>> [round(float(schedule(s)), 6) for s in (0, 25, 100, 150)]
    [0.1, 0.075, 0.0, 0.0]
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
        return self.final_learning_rate + amplitude * remaining

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "final_learning_rate": self.final_learning_rate,
        }
