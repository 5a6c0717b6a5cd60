"""Nesterov momentum with an optional linear momentum warm-up."""

import keras
from keras import ops

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.optimizers import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class Nesterov(keras.optimizers.Optimizer):
    """Stochastic gradient descent with Nesterov momentum (change-of-variables form).

    Nesterov momentum takes the gradient at the look-ahead point
    `x + rho v` (Nesterov 1983; Sutskever et al. 2013, "On the importance of
    initialization and momentum in deep learning"):

    ```
    v_t = rho_t v_{t-1} - lr * grad f(x_{t-1} + rho_t v_{t-1})
    x_t = x_{t-1} + v_t
    ```

    The optimizer stores the look-ahead point `x~_{t-1} = x_{t-1} + rho_t v_{t-1}`
    instead of `x`, so that only the gradient at the stored parameters is needed.
    Substituting gives the update applied at step `t` (counting from 1):

    ```
    v   <- rho_t v - lr * g                  # g = grad f(x~)
    x~  <- x~ - rho_t v_old + (1 + rho_{t+1}) v
         = x~ + rho_{t+1} v - lr * g
    ```

    With a constant momentum `rho` this is the change of variables of Bengio,
    Boulanger-Lewandowski & Pascanu 2013 ("Advances in optimizing recurrent
    networks"), `x~ <- x~ - rho v_old + (1 + rho) v`, and exactly the arithmetic of
    `keras.optimizers.SGD(momentum=rho, nesterov=True)`. The change of variables is
    exact for a time-varying `rho_t` as well, which is why the step uses both
    `rho_t` and the next step's `rho_{t+1}`.

    Momentum warm-up (a low momentum such as 0.5 at first, raised over training, as
    in Sutskever et al. 2013 and Stanford CS231n's notes): when `initial_momentum`
    is set, `rho_t = initial_momentum + (momentum - initial_momentum) *
    min((t - 1) / momentum_warmup_steps, 1)`, so `rho_1 = initial_momentum` and
    `rho_t = momentum` from step `momentum_warmup_steps + 1` on.

    The velocity slot `v` is one variable per parameter; when training starts the
    stored parameters are `x~_0 = x_0` since `v_0 = 0`. After training the model
    holds `x~`, as with Keras's SGD.

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable without
            arguments returning the learning rate. Defaults to `0.01`.
        momentum: Float in `[0, 1)`, the momentum `rho` (after the warm-up).
            Defaults to `0.9`.
        initial_momentum: Float in `[0, 1)` or `None`: the momentum at step 1 of a
            linear warm-up. `None` keeps the momentum constant. Defaults to `None`.
        momentum_warmup_steps: Integer >= 0, the length of the warm-up; must be >= 1
            when `initial_momentum` is set. Defaults to `0`.
        {{base_kwargs}}

    Example:

    >>> import keras, keras_trainplus as ktp
    >>> optimizer = ktp.optimizers.Nesterov(
    ...     learning_rate=0.1, momentum=0.9, initial_momentum=0.5,
    ...     momentum_warmup_steps=1000)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=optimizer, loss="mse")
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        initial_momentum=None,
        momentum_warmup_steps=0,
        **kwargs,
    ):
        learning_rate = _common.check_learning_rate(learning_rate)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _validation.check_number(
            "momentum", momentum, 0, 1, high_inclusive=False
        )
        if initial_momentum is not None:
            initial_momentum = _validation.check_number(
                "initial_momentum", initial_momentum, 0, 1, high_inclusive=False
            )
        self.initial_momentum = initial_momentum
        self.momentum_warmup_steps = _validation.check_number(
            "momentum_warmup_steps", momentum_warmup_steps, low=0, integer=True
        )
        if initial_momentum is not None and self.momentum_warmup_steps < 1:
            raise ValueError(
                "Argument `momentum_warmup_steps` must be an integer >= 1 when "
                "`initial_momentum` is set. Received: "
                f"momentum_warmup_steps={momentum_warmup_steps!r}"
            )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = [
            self.add_variable_from_reference(v, name="velocity") for v in var_list
        ]

    def _momentum_at(self, step, dtype):
        """`rho_step`, the momentum used at (1-based) step `step`."""
        # In-graph from `optimizer.iterations`: no retracing while it ramps.
        if self.initial_momentum is None:
            return ops.cast(self.momentum, dtype)
        progress = ops.minimum((step - 1.0) / self.momentum_warmup_steps, 1.0)
        rho = self.initial_momentum + (self.momentum - self.initial_momentum) * progress
        return ops.cast(rho, dtype)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, "float32")
        rho = self._momentum_at(step, variable.dtype)
        rho_next = self._momentum_at(step + 1.0, variable.dtype)
        velocity = self._velocities[_compat.optimizer_variable_index(self, variable)]
        self.assign(
            velocity,
            ops.subtract(ops.multiply(velocity, rho), ops.multiply(gradient, lr)),
        )
        self.assign_add(
            variable,
            ops.subtract(ops.multiply(velocity, rho_next), ops.multiply(gradient, lr)),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "initial_momentum": self.initial_momentum,
                "momentum_warmup_steps": self.momentum_warmup_steps,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Keras's base `from_config` deserializes a schedule into `config` in place.
        return super().from_config(dict(config), custom_objects=custom_objects)


if Nesterov.__doc__ is not None:
    Nesterov.__doc__ = Nesterov.__doc__.replace(
        "{{base_kwargs}}", _common.BASE_KWARGS_DOC
    )
