"""Helpers shared by the optimizers of this package (private)."""

import math

from keras import ops

from keras_trainplus import _validation

BASE_KWARGS_DOC = """**kwargs: Keras's base optimizer arguments, all supported:
            `weight_decay` (decoupled, `x <- x - lr * weight_decay * x` before the
            update, skipping variables given to `exclude_from_weight_decay`),
            `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps` and `name`. Any other keyword raises
            `ValueError`."""


def check_learning_rate(learning_rate):
    """Validates a constant learning rate (>= 0); schedules and callables pass as is."""
    if callable(learning_rate):
        return learning_rate
    return _validation.check_number("learning_rate", learning_rate, low=0)


def one_minus_power(beta, step):
    """`1 - beta**step` in float32 without rounding `beta` to float32 first.

    `beta` is a Python float; `log(beta)` is folded in float64 and `expm1` keeps the
    small differences (`1 - 0.999**t` for small `t`) accurate to float32 rounding,
    where `1 - float32(beta)**t` is off by up to `1e-5` relative.
    """
    if beta == 0.0:
        return ops.ones((), "float32")
    log_beta = math.log1p(-(1.0 - beta))
    return -ops.expm1(step * log_beta)
