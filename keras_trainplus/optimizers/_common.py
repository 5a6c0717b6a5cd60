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


def dense_gradient(gradient, variable):
    """`gradient` as a dense tensor of `variable`'s shape.

    Sparse gradients are TensorFlow `IndexedSlices` (rows of an `Embedding`,
    repeated indices summed) and JAX sparse arrays (`BCOO`); dense ones pass as is.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return ops.segment_sum(
                gradient.values,
                ops.convert_to_tensor(gradient.indices),
                num_segments=variable.shape[0],
            )
        return gradient
    return ops.convert_to_tensor(gradient, sparse=False)


def optimizer_chain(optimizer):
    """The optimizer and the optimizers it wraps, outermost first.

    A wrapper steps one inner optimizer and exposes it as `inner_optimizer`
    (Keras's `LossScaleOptimizer`) or as `optimizer` (keras_trainplus's
    `LookAhead` and `Ranger`, and any wrapper following either convention). The
    chain ends at the first optimizer that wraps none, e.g. a Keras
    `MultiOptimizer`, which steps several (see `learning_rate_optimizer`).
    """
    chain = [optimizer]
    while True:
        inner = _wrapped(chain[-1])
        if inner is None or any(inner is seen for seen in chain):
            return chain
        chain.append(inner)


def _wrapped(optimizer):
    for name in ("inner_optimizer", "optimizer"):
        inner = getattr(optimizer, name, None)
        if isinstance(inner, keras.optimizers.Optimizer):
            return inner
    return None


def is_multi_optimizer(optimizer):
    """Whether `optimizer` is a `keras.optimizers.MultiOptimizer` (Keras >= 3.15)."""
    multi = getattr(keras.optimizers, "MultiOptimizer", None)
    return multi is not None and isinstance(optimizer, multi)


def learning_rate_optimizer(optimizer):
    """The optimizer of `optimizer`'s chain that holds the learning rate.

    The innermost one: wrappers read and write their inner optimizer's rate. A
    `keras.optimizers.MultiOptimizer` holds one rate per sub-optimizer and none of
    its own, so code that reads or drives "the" learning rate refuses it.

    Raises:
        ValueError: the chain ends at a `MultiOptimizer`.
    """
    innermost = optimizer_chain(optimizer)[-1]
    if is_multi_optimizer(innermost):
        names = ", ".join(type(o).__name__ for o in innermost.optimizers)
        raise ValueError(
            "This needs the optimizer's learning rate, but a "
            "`keras.optimizers.MultiOptimizer` holds one per sub-optimizer "
            f"({names}) and none of its own. Give each sub-optimizer its own "
            "schedule instead (e.g. `keras_trainplus.schedules.*`)."
        )
    return innermost


class InnerOptimizerRate:
    """Mixin of the wrappers that step one inner optimizer, `self.optimizer`.

    Its learning rate is the wrapper's: reads and writes (e.g. by Keras's
    `LearningRateScheduler` or `ReduceLROnPlateau`) go to the inner optimizer, a
    loss is scaled by both (the inner one may be a `LossScaleOptimizer`), both
    finalize the variables (e.g. an inner EMA), and the config holds the inner
    optimizer instead of a rate. List it before the `keras.optimizers.Optimizer`
    base, whose members it overrides.
    """

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.optimizer.learning_rate = learning_rate

    def scale_loss(self, loss):
        return self.optimizer.scale_loss(super().scale_loss(loss))

    def finalize_variable_values(self, var_list):
        super().finalize_variable_values(var_list)
        self.optimizer.finalize_variable_values(var_list)

    def _wrapper_config(self):
        """The base config with the inner optimizer in place of a learning rate."""
        config = super().get_config()
        config.pop("learning_rate")
        config["optimizer"] = keras.saving.serialize_keras_object(self.optimizer)
        return config


def refuse_learning_rate(kwargs):
    """Refuses `learning_rate`: a wrapper's rate is its inner optimizer's."""
    if "learning_rate" in kwargs:
        raise ValueError(
            "Argument `learning_rate` is not accepted: the learning rate is the "
            "inner optimizer's; set it there. Received: "
            f"learning_rate={kwargs['learning_rate']!r}"
        )


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
