"""Cosine decay from an initial to a final learning rate over a number of steps."""

import keras

from keras_trainplus import _validation
from keras_trainplus.schedules import _common
from keras_trainplus.schedules import _decay


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class CosineDecay(_decay.FiniteDecay):
    """Half a cosine from `initial_learning_rate` down to `final_learning_rate`.

    The annealing of SGDR (Loshchilov & Hutter 2017, arXiv:1608.03983) without
    restarts. With `T = decay_steps`:

    ```
    lr(t) = final + (initial - final) * (1 + cos(pi * min(t, T) / T)) / 2
    ```

    so `lr(0) = initial_learning_rate`, `lr(T) = final_learning_rate`, and the rate
    stays at `final_learning_rate` after step `T`. This is the convention of optax's
    `cosine_decay_schedule(init_value, decay_steps, alpha=final / initial)` and of
    Keras's `CosineDecay(initial, decay_steps, alpha=final / initial)`, here with
    the floor given as a rate rather than a fraction.

    Reference:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017 (arXiv:1608.03983).

    Args:
        initial_learning_rate: float >= 0, the rate at step 0. Defaults to none
            (required).
        decay_steps: integer > 0, the number of steps of the decay `T`. Defaults to
            none (required).
        final_learning_rate: float in [0, initial_learning_rate], the rate from
            step `T` on. Defaults to `0.0`.

    Example:

    >>> schedule = CosineDecay(0.1, decay_steps=100, final_learning_rate=0.001)
    >>> [round(float(schedule(s)), 6) for s in (0, 50, 100, 150)]
    [0.1, 0.0505, 0.001, 0.001]
    """

    def profile(self, remaining):
        # Evaluated as `sin(pi (T - t) / (2 T)) ** 2`, the same number as
        # `(1 + cos(pi t / T)) / 2`, which keeps float32 precise near the floor.
        return _common.cosine_fraction(remaining)
