"""Rectified Adam (RAdam)."""

import math

import keras
from keras import ops

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.optimizers import _common

# Numerics: `rho_inf`, `log(beta_2)` and the other constants are folded in Python
# float64 (rounding `beta_2 = 0.999` to float32 first would shift `rho_inf` by about
# 0.03), `1 - beta^t` is formed as `-expm1(t log(beta))`, and `rho_t` as
# `K + t - (2/c) (x^2/12 - x^4/720 + ...)` with `c = -log(beta_2)`, `x = t c`,
# `K = rho_inf - 2/c` for `x < 0.5` (a Bernoulli series free of the catastrophic
# cancellation of the direct form, where `rho_t ~ 5` is the difference of two
# numbers near 2000) and `rho_inf - 2 t / expm1(x)` beyond, so that float32 follows
# the float64 equations also on accelerators without float64.
#
# Coefficients of x/(e^x - 1) = 1 - x/2 + sum_k B_2k x^2k / (2k)!, with the signs
# folded in: (x/2 - 1 + x/expm1(x)) / x^2 = 1/12 - x^2/720 + x^4/30240 - ...
_BERNOULLI_SERIES = (1 / 12, -1 / 720, 1 / 30240, -1 / 1209600, 1 / 47900160)
# Below this `t * log(1 / beta_2)` the series (truncation error < 1e-12
# relative) replaces the direct form, which cancels there.
_SERIES_LIMIT = 0.5


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class RAdam(keras.optimizers.Optimizer):
    """Rectified Adam: Adam whose adaptive step starts once its variance is tractable.

    Liu et al. 2019, "On the Variance of the Adaptive Learning Rate and Beyond"
    (arXiv:1908.03265). With `t` the step count from 1:

    ```
    m <- beta_1 m + (1 - beta_1) g
    v <- beta_2 v + (1 - beta_2) g^2
    rho_inf = 2 / (1 - beta_2) - 1
    rho_t   = rho_inf - 2 t beta_2^t / (1 - beta_2^t)
    if rho_t > sma_threshold:
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        x <- x - lr r_t sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)
    else:
        x <- x - lr / (1 - beta_1^t) * m
    ```

    Epsilon convention: as in `keras.optimizers.Adam`, `epsilon` is added to
    `sqrt(v)` (not to the bias-corrected `sqrt(v_hat)`), and the bias corrections
    are folded into the step size, so with `r_t = 1` the rectified step is exactly
    Keras's Adam step. There is no hidden warm-up schedule and `epsilon` is used as
    given (0 included). The threshold is 5 as in the authors' code (the paper says
    4); it must be >= 4, where `r_t` is real.

    Numerics: float32 trajectories follow the float64 equations to float32
    precision on every backend. Keras's Adam raises the float32-rounded betas to
    the power `t`, so the two differ by up to ~1e-5 relative in the first steps
    and agree once `beta^t` is negligible.

    State: two slots per parameter (`m`, `v`), as Adam.

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable without
            arguments returning the learning rate. Defaults to `0.001`.
        beta_1: Float in `[0, 1)`, decay rate of the first moment. Defaults to `0.9`.
        beta_2: Float in `[0, 1)`, decay rate of the second moment. Defaults to
            `0.999`.
        epsilon: Float >= 0 added to `sqrt(v)`. Defaults to `1e-7`.
        sma_threshold: Float >= 4: the rectified step is taken when
            `rho_t > sma_threshold`. Defaults to `5.0`.
        {{base_kwargs}}

    Example:

    >>> import keras, keras_trainplus as ktp
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=ktp.optimizers.RAdam(1e-3), loss="mse")
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        sma_threshold=5.0,
        **kwargs,
    ):
        learning_rate = _common.check_learning_rate(learning_rate)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = _validation.check_number(
            "beta_1", beta_1, 0, 1, high_inclusive=False
        )
        self.beta_2 = _validation.check_number(
            "beta_2", beta_2, 0, 1, high_inclusive=False
        )
        self.epsilon = _validation.check_number("epsilon", epsilon, low=0)
        self.sma_threshold = _validation.check_number(
            "sma_threshold", sma_threshold, low=4
        )
        rho_inf = 2.0 / (1.0 - self.beta_2) - 1.0
        self._rho_inf = rho_inf
        # rho_t < rho_inf for every t: with rho_inf <= threshold no step is rectified.
        self._rectifiable = rho_inf > self.sma_threshold
        if self._rectifiable:
            self._log_inv_beta_2 = -math.log1p(-(1.0 - self.beta_2))
            self._rho_offset = rho_inf - 2.0 / self._log_inv_beta_2
            self._rect_scale = rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0))

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = [
            self.add_variable_from_reference(v, name="momentum") for v in var_list
        ]
        self._velocities = [
            self.add_variable_from_reference(v, name="velocity") for v in var_list
        ]

    def _rho(self, step):
        """`rho_t` in float32 without cancellation (see the module comment)."""
        c = self._log_inv_beta_2
        x = step * c
        y = x * x
        series = _BERNOULLI_SERIES[-1]
        for coefficient in reversed(_BERNOULLI_SERIES[:-1]):
            series = coefficient + y * series
        small = self._rho_offset + step - (2.0 * c) * (step * step) * series
        large = self._rho_inf - 2.0 * step / ops.expm1(x)
        return ops.where(x < _SERIES_LIMIT, small, large)

    def _step_size_and_rectified(self, learning_rate):
        """Returns `(step size, rectified)` for the current step, in float32."""
        step = ops.cast(self.iterations + 1, "float32")
        lr = ops.cast(learning_rate, "float32")
        bias_1 = _common.one_minus_power(self.beta_1, step)
        momentum_step = lr / bias_1
        if not self._rectifiable:
            return momentum_step, None
        rho = self._rho(step)
        rectified = rho > self.sma_threshold
        # Clamped so the unselected branch stays finite before the threshold.
        rho_safe = ops.maximum(rho, 4.0)
        r = ops.sqrt((rho_safe - 4.0) * (rho_safe - 2.0) / rho_safe * self._rect_scale)
        bias_2 = _common.one_minus_power(self.beta_2, step)
        adaptive_step = lr * r * ops.sqrt(bias_2) / bias_1
        return ops.where(rectified, adaptive_step, momentum_step), rectified

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        index = _compat.optimizer_variable_index(self, variable)
        m = self._momentums[index]
        v = self._velocities[index]
        step_size, rectified = self._step_size_and_rectified(learning_rate)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2)
        )
        step_size = ops.cast(step_size, dtype)
        if rectified is None:
            self.assign_sub(variable, ops.multiply(m, step_size))
            return
        denominator = ops.where(rectified, ops.add(ops.sqrt(v), self.epsilon), 1.0)
        self.assign_sub(variable, ops.divide(ops.multiply(m, step_size), denominator))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "sma_threshold": self.sma_threshold,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Keras's base `from_config` deserializes a schedule into `config` in place.
        return super().from_config(dict(config), custom_objects=custom_objects)


if RAdam.__doc__ is not None:
    RAdam.__doc__ = RAdam.__doc__.replace("{{base_kwargs}}", _common.BASE_KWARGS_DOC)
