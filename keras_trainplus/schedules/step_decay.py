"""Step decay: multiply the learning rate by a constant factor at fixed boundaries."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Multiplies the learning rate by `decay_rate` at each boundary.

    The step schedule of the ResNet recipe (He et al. 2016, arXiv:1512.03385: divide
    by 10 at epochs 30, 60 and 90). With `n(t)` the number of boundaries `b_i` (in
    steps) such that `t >= b_i`:

    ```
    lr(t) = initial_learning_rate * decay_rate ** n(t)
    ```

    Boundaries are epochs when `steps_per_epoch` is given and steps otherwise. The
    decayed rate applies from step `b_i` itself: with `boundaries=[30]` and
    `steps_per_epoch=100`, step 3000 (the first step of 0-based epoch 30) already
    uses `0.1 * initial_learning_rate`. Keras's `PiecewiseConstantDecay` switches
    one step later (it uses the old value while `t <= b_i`).

    Args:
        initial_learning_rate: float >= 0, the rate before the first boundary.
            Defaults to none (required).
        boundaries: non-empty list of strictly increasing integers > 0, in epochs
            when `steps_per_epoch` is given, in steps otherwise. Defaults to none
            (required).
        decay_rate: float in (0, 1], the factor applied at each boundary. Defaults
            to `0.1`.
        steps_per_epoch: integer > 0 or `None`; when given, `boundaries` count
            epochs of this many steps. Defaults to `None` (boundaries in steps).

    Example:

    >>> schedule = StepDecay(0.1, boundaries=[30, 60, 90], steps_per_epoch=100)
    >>> [round(float(schedule(s)), 6) for s in (2999, 3000, 6000, 9000)]
    [0.1, 0.01, 0.001, 0.0001]
    """

    def __init__(
        self,
        initial_learning_rate,
        boundaries,
        decay_rate=0.1,
        steps_per_epoch=None,
    ):
        super().__init__()
        self.initial_learning_rate = _validation.check_number(
            "initial_learning_rate", initial_learning_rate, low=0
        )
        self.decay_rate = _validation.check_number(
            "decay_rate", decay_rate, low=0, high=1, low_inclusive=False
        )
        if steps_per_epoch is not None:
            steps_per_epoch = _validation.check_number(
                "steps_per_epoch", steps_per_epoch, low=1, integer=True
            )
        self.steps_per_epoch = steps_per_epoch
        self.boundaries = self._check_boundaries(boundaries)
        scale = 1 if steps_per_epoch is None else steps_per_epoch
        self.boundary_steps = [b * scale for b in self.boundaries]
        # Rates after 0, 1, ..., n boundaries, rounded once from float64.
        self._rates = [
            self.initial_learning_rate * self.decay_rate**k
            for k in range(len(self.boundaries) + 1)
        ]

    def _check_boundaries(self, boundaries):
        unit = "epochs" if self.steps_per_epoch is not None else "steps"
        message = (
            "Argument `boundaries` must be a non-empty list of strictly increasing "
            f"integers > 0 ({unit}). Received: boundaries={boundaries!r}"
        )
        try:
            values = list(boundaries)
            values = [
                _validation.check_number("boundaries", b, low=1, integer=True)
                for b in values
            ]
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if not values or any(a >= b for a, b in zip(values, values[1:])):
            raise ValueError(message)
        return values

    def __call__(self, step):
        step = _common.as_step(step)
        boundary_steps = ops.convert_to_tensor(self.boundary_steps, "float32")
        passed = ops.cast(
            ops.greater_equal(ops.expand_dims(step, -1), boundary_steps), "int32"
        )
        rates = ops.convert_to_tensor(self._rates, "float32")
        return ops.take(rates, ops.sum(passed, axis=-1))

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "boundaries": list(self.boundaries),
            "decay_rate": self.decay_rate,
            "steps_per_epoch": self.steps_per_epoch,
        }
