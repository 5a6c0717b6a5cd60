"""Linear decay from an initial to a final learning rate over a number of steps."""

import keras

from keras_trainplus import _validation
from keras_trainplus.schedules import _decay


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class LinearDecay(_decay.FiniteDecay):
    """A straight line from `initial_learning_rate` down to `final_learning_rate`.

    The linear decay `lr(t) = lr_0 (1 - t / T)` with a floor. With `T = decay_steps`:

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

    def profile(self, remaining):
        return remaining
