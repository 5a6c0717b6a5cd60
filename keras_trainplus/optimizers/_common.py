"""Helpers shared by the optimizers of this package (private)."""

import math

import keras
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


def get_optimizer(optimizer):
    """An optimizer instance from an instance, a string identifier or a config."""
    if isinstance(optimizer, (str, dict)):
        optimizer = keras.optimizers.get(optimizer)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            "Argument `optimizer` must be a `keras.optimizers.Optimizer` "
            "instance, a string identifier or an optimizer config. "
            f"Received: optimizer={optimizer!r}"
        )
    return optimizer


def stateless_step(optimizer, grads, variables, built):
    """Runs `optimizer`'s step through its `stateless_apply` and writes it back.

    For a wrapper stepping an inner optimizer under JAX: the inner one may branch
    with `ops.cond` (a `LossScaleOptimizer` does), whose branches must not assign.
    `variables` (with `grads`) is any subset of `built`, the variables `optimizer`
    was built on; the others get no gradient. The results are assigned to the
    variables, i.e. into the enclosing `StatelessScope` inside a traced step.
    """
    index = {id(v): i for i, v in enumerate(built)}
    all_grads = [None] * len(built)
    for grad, variable in zip(grads, variables):
        all_grads[index[id(variable)]] = grad
    new_values, new_state = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], all_grads, [v.value for v in built]
    )
    for variable, value in zip(built, new_values):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, new_state):
        variable.assign(value)
