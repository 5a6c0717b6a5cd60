"""Warm-up in front of any schedule (or a constant rate)."""

import numbers

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Warms the rate up to a schedule's starting value, then runs that schedule.

    The warm-up of Goyal et al. 2017 (arXiv:1706.02677) for large batches and of
    the Transformer (arXiv:1706.03762), in front of any schedule. With
    `W = warmup_steps`, `s` the wrapped schedule and `target = s(0)`:

    ```
    lr(t) = initial + (target - initial) * w(t / W)   for t < W
    lr(t) = s(t - W)                                   for t >= W
    ```

    where `w(x) = x` (`shape="linear"`) or `w(x) = (1 - cos(pi x)) / 2`
    (`shape="cosine"`). The wrapped schedule starts its own step count after the
    warm-up, so the total length is `warmup_steps` plus the wrapped schedule's
    length, and the junction is continuous: `lr(W) = s(0)`. This is optax's
    convention: `WarmUp(CosineDecay(peak, D - W, end), W, init)` equals
    `optax.warmup_cosine_decay_schedule(init, peak, W, D, end)`, whose
    `decay_steps` `D` counts the warm-up.

    Args:
        schedule: a `LearningRateSchedule`, or a float >= 0 for a constant rate
            after the warm-up. Defaults to none (required).
        warmup_steps: integer >= 0, the length of the warm-up `W`; `0` runs the
            wrapped schedule alone. Defaults to none (required).
        initial_learning_rate: float >= 0, the rate at step 0. Defaults to `0.0`.
        shape: `"linear"` or `"cosine"`, the form of the warm-up ramp. Defaults to
            `"linear"`.

    Example:

    >>> from keras_trainplus.schedules import CosineDecay
    >>> schedule = WarmUp(CosineDecay(0.1, decay_steps=900), warmup_steps=100)
    >>> [round(float(schedule(s)), 6) for s in (0, 50, 100, 550, 1000)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    def __init__(
        self, schedule, warmup_steps, initial_learning_rate=0.0, shape="linear"
    ):
        super().__init__()
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            if not isinstance(schedule, numbers.Real) or isinstance(schedule, bool):
                raise ValueError(
                    "Argument `schedule` must be a LearningRateSchedule or a float "
                    f">= 0. Received: schedule={schedule!r}"
                )
            schedule = _validation.check_number("schedule", schedule, low=0)
        self.schedule = schedule
        self.warmup_steps = _validation.check_number(
            "warmup_steps", warmup_steps, low=0, integer=True
        )
        self.initial_learning_rate = _validation.check_number(
            "initial_learning_rate", initial_learning_rate, low=0
        )
        self.shape = _validation.check_choice("shape", shape, ("linear", "cosine"))

    def _wrapped(self, step):
        if isinstance(self.schedule, float):
            return ops.full_like(step, self.schedule)
        return ops.cast(self.schedule(step), "float32")

    def __call__(self, step):
        step = _common.as_step(step)
        if self.warmup_steps == 0:
            return self._wrapped(step)
        warmup_steps = float(self.warmup_steps)
        progress = ops.minimum(step, warmup_steps) / warmup_steps
        if self.shape == "cosine":
            # (1 - cos(pi x)) / 2 = sin(pi x / 2) ** 2, precise near x = 0.
            progress = _common.cosine_fraction(progress)
        target = self._wrapped(ops.zeros_like(step))
        rise = target - self.initial_learning_rate
        ramp = self.initial_learning_rate + rise * progress
        after = self._wrapped(ops.maximum(step - warmup_steps, 0.0))
        return ops.where(ops.less(step, warmup_steps), ramp, after)

    def get_config(self):
        schedule = self.schedule
        if not isinstance(schedule, float):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {
            "schedule": schedule,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "shape": self.shape,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.saving.deserialize_keras_object(
                config["schedule"]
            )
        return cls(**config)
