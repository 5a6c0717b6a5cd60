"""LookAhead: slow weights that follow any Keras optimizer's fast weights."""

import copy

import keras
import numpy as np
from keras import ops

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.optimizers import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class LookAhead(_common.InnerOptimizerRate, _compat.WholeStepOptimizer):
    """Wraps any optimizer; every `sync_period` steps, moves weights to slow weights.

    Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back"
    (arXiv:1907.08610). The inner ("fast") optimizer updates the model's weights
    `theta` as usual; the wrapper keeps slow weights `phi` (one slot per parameter,
    on top of the inner optimizer's state) and, after every `k = sync_period`-th
    step the inner optimizer actually takes:

    ```
    phi   <- phi + slow_step_size * (theta - phi)
    theta <- phi
    ```

    Conventions:

    - `phi` of a variable is set to its value right before the inner optimizer's
      first step on it: for `model.fit`, the weights the model starts training
      from (after any `load_weights` or checkpoint restore made before that
      step); a variable that first gets a gradient later (a backbone unfrozen
      during training) starts its `phi` then. A restored optimizer keeps its
      saved `phi`.
    - The sync counter is the inner optimizer's own `iterations`. A step that the
      inner optimizer skips (e.g. `keras.optimizers.LossScaleOptimizer` on
      non-finite gradients: its `iterations` does not advance) neither advances the
      counter nor touches `phi` or `theta`.
    - The sync and the start of `phi` run in-graph, and the other `k - 1` steps
      move no memory beyond the inner update: no retracing, no host round trip
      (except on PyTorch, whose conditionals are Python `if`s).
    - `learning_rate` reads and writes go to the inner optimizer, so
      `ReduceLROnPlateau` and `LearningRateScheduler` work. `LookAhead.iterations`
      counts calls to `apply`, as for every Keras optimizer.
    - Keras's base arguments given to `LookAhead` apply around the inner optimizer
      (e.g. `clipnorm` clips before the gradients reach it); the inner optimizer's
      own arguments apply as well.
    - `variables` holds `LookAhead`'s own variables (counter, slow weights, flags
      of the variables stepped so far) followed by the inner optimizer's, so all
      of it is saved with the model and carried by `stateless_apply` (JAX).
    - Final weights: after training the model holds the fast weights `theta`, as in
      the paper's Algorithm 1 and the authors' code; they equal `phi` right after a
      sync, i.e. when the number of inner steps is a multiple of `sync_period`. Call
      `swap_slow_weights()` to put `phi` into the model (e.g. to evaluate or save
      with the slow weights) and call it again to swap back; before the first
      step it leaves the model unchanged.
    - `set_weights(weights)` takes the arrays of `variables` (own and inner), so
      `other.set_weights(optimizer.variables)` copies the whole state.

    Args:
        optimizer: The inner optimizer: a `keras.optimizers.Optimizer` instance (a
            `LossScaleOptimizer` included), a string identifier such as `"adam"`,
            or a serialized optimizer config.
        sync_period: Integer >= 1, the number `k` of inner steps between syncs.
            Defaults to `5`.
        slow_step_size: Float in `[0, 1]`, the step `alpha` of the slow weights.
            Defaults to `0.5`.
        {{base_kwargs}}

    Example:

    >>> import keras, keras_trainplus as ktp
    >>> optimizer = ktp.optimizers.LookAhead(keras.optimizers.Adam(1e-3))
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=optimizer, loss="mse")
    >>> _ = model.fit(keras.ops.ones((8, 4)), keras.ops.ones((8, 1)), verbose=0)
    >>> optimizer.swap_slow_weights()  # evaluate with phi ...
    >>> optimizer.swap_slow_weights()  # ... and back to theta
    """

    def __init__(self, optimizer, sync_period=5, slow_step_size=0.5, **kwargs):
        optimizer = _common.get_optimizer(optimizer)
        _common.refuse_learning_rate(kwargs)
        super().__init__(learning_rate=0.0, **kwargs)
        self.optimizer = optimizer
        self.sync_period = _validation.check_number(
            "sync_period", sync_period, low=1, integer=True
        )
        self.slow_step_size = _validation.check_number(
            "slow_step_size", slow_step_size, 0, 1
        )

    def build(self, var_list):
        if self.built:
            return
        self.optimizer.build(var_list)
        super().build(var_list)
        # Slots created like any optimizer's, without reading the model: TensorFlow
        # builds optimizers while tracing the train function, where XLA cannot lift
        # a variable whose initial value comes from the graph, and the model's own
        # variables may not hold values yet (created inside the first train step).
        # `phi` of a variable is set by the first step on it (`_start`); `started`
        # flags the variables stepped so far (1.0) in the built order.
        self._slow_weights = [
            self.add_variable_from_reference(v, name="slow") for v in var_list
        ]
        self._started = self.add_variable(
            (len(var_list),), initializer="zeros", dtype="float32", name="started"
        )

    @property
    def variables(self):
        return super().variables + self.optimizer.variables

    def set_weights(self, weights):
        """Sets the state of the wrapper and of its inner optimizer.

        Args:
            weights: arrays in the order of `variables` (the wrapper's own
                followed by the inner optimizer's), e.g. another optimizer's
                `variables` after `build` on the same model.
        """
        if not self.built:
            return super().set_weights(weights)
        variables = self.variables
        if len(weights) != len(variables):
            raise ValueError(
                f"`set_weights` expects {len(variables)} arrays, one per entry of "
                f"`variables` (the wrapper's own followed by the inner optimizer's). "
                f"Received: {len(weights)} arrays"
            )
        for variable, weight in zip(variables, weights):
            if tuple(variable.shape) != tuple(weight.shape):
                raise ValueError(
                    f"Optimizer variable {variable.path} has shape "
                    f"{tuple(variable.shape)}, not compatible with the provided "
                    f"weight shape {tuple(weight.shape)}."
                )
            variable.assign(weight)

    def update_all(self, grads, trainable_variables):
        indices = [
            _compat.optimizer_variable_index(self, v) for v in trainable_variables
        ]
        slow_weights = [self._slow_weights[i] for i in indices]
        self._start(indices, trainable_variables, slow_weights)
        # The start reads the weights the inner step then overwrites. XLA updates
        # a variable in place only when every read of its old value is ordered
        # before the write by data flow (a conditional's read is not), else it
        # copies the variable on every step: the gradients take an exact zero
        # computed from the flags the start wrote (XLA does not fold `0 * x`).
        zero = ops.multiply(0.0, ops.sum(ops.convert_to_tensor(self._started)))
        grads = [_plus_zero(g, zero) for g in grads]
        before = ops.copy(ops.convert_to_tensor(self.optimizer.iterations))
        if keras.backend.backend() == "jax":
            self._stateless_inner_apply(grads, trainable_variables)
        else:
            self.optimizer.apply(grads, trainable_variables)
        after = ops.convert_to_tensor(self.optimizer.iterations)
        sync = ops.logical_and(
            ops.not_equal(after, before), ops.equal(after % self.sync_period, 0)
        )
        # One conditional over all variables (see `_assign_if`: on TensorFlow a
        # loop run 0 or 1 times, which XLA updates in place).
        _assign_if(
            sync,
            list(trainable_variables) + slow_weights,
            _synced_pair,
            _unchanged_pair,
            (trainable_variables, slow_weights, self.slow_step_size),
            self.assign,
        )

    def _start(self, indices, variables, slow_weights):
        """`phi <- theta` for the variables stepped for the first time, before the step.

        One conditional, taken on the first step and whenever a variable the
        optimizer has not stepped yet gets a gradient (e.g. a backbone unfrozen
        during training); the variables already stepped keep their `phi`.
        """
        started = ops.convert_to_tensor(self._started)
        flags = [started[i] for i in indices]
        stepped = np.zeros(len(self._slow_weights), "float32")
        stepped[indices] = 1.0
        now_started = ops.maximum(started, stepped)
        _assign_if(
            ops.any(ops.equal(ops.take(started, indices), 0.0)),
            slow_weights + [self._started],
            _started_slow,
            _unchanged_slow,
            (variables, slow_weights, flags, started, now_started),
            self.assign,
        )

    def _stateless_inner_apply(self, grads, trainable_variables):
        # Under JAX the inner optimizer may branch with `ops.cond` (a
        # LossScaleOptimizer does), which must not assign inside its branches:
        # run it statelessly and write its results back (into the enclosing
        # StatelessScope when `stateless_apply` traces this step).
        built = _compat.optimizer_built_variables(self)
        all_grads = [None] * len(built)
        for grad, variable in zip(grads, trainable_variables):
            all_grads[_compat.optimizer_variable_index(self, variable)] = grad
        new_values, new_state = self.optimizer.stateless_apply(
            [v.value for v in self.optimizer.variables],
            all_grads,
            [v.value for v in built],
        )
        for variable, value in zip(built, new_values):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, new_state):
            variable.assign(value)

    def swap_slow_weights(self, var_list=None):
        """Swaps the values of the model's weights and of their slow weights.

        Calling it twice restores the original state. Use it to evaluate, predict or
        save with the slow weights `phi`, e.g. at the end of training. A variable
        the optimizer has not stepped yet has no slow weights of its own (its `phi`
        will be its value at its first step): it is left as it is.

        Args:
            var_list: the variables to swap; defaults to all the variables the
                optimizer was built with.
        """
        if not self.built:
            raise ValueError(
                "`swap_slow_weights()` needs a built optimizer: call "
                "`optimizer.build(model.trainable_variables)` or train first."
            )
        if var_list is None:
            var_list = _compat.optimizer_built_variables(self)
        started = ops.convert_to_numpy(self._started)
        for variable in var_list:
            index = _compat.optimizer_variable_index(self, variable)
            if not started[index]:
                continue
            slow = self._slow_weights[index]
            fast = ops.copy(ops.convert_to_tensor(variable))
            variable.assign(ops.copy(ops.convert_to_tensor(slow)))
            slow.assign(fast)

    def get_config(self):
        config = self._wrapper_config()
        config.update(
            {
                "sync_period": self.sync_period,
                "slow_step_size": self.slow_step_size,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Deep copy: Keras's `from_config`s (e.g. LossScaleOptimizer's) pop keys
        # from the nested config they are given.
        config = copy.deepcopy(config)
        if "optimizer" in config:
            config["optimizer"] = keras.saving.deserialize_keras_object(
                config["optimizer"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)


def _assign_if(condition, targets, true_fn, false_fn, operands, assign):
    """Assigns `true_fn(*operands)` to `targets` if `condition`, in one conditional.

    `operands` are lists of variables (read inside the conditional), lists of
    tensors or Python numbers; `false_fn` returns the targets' current values. JAX:
    one `lax.cond`, whose branches return values (they must not assign); module-
    level branch functions keep JAX's trace cache warm when running eagerly.
    TensorFlow: a `while_loop` run 0 or 1 times, in cross-replica context so that
    assignments reach every replica's copy; XLA turns the variables a `cond`
    assigns into outputs of both branches and copies all of them on every step,
    while a loop updates them in place. Other backends: `ops.cond` (a Python `if`
    on PyTorch).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        values = jax.lax.cond(condition, true_fn, false_fn, *_read(operands))
        for target, value in zip(targets, values):
            target.assign(value)
        return

    def assign_new():
        for target, value in zip(targets, true_fn(*_read(operands))):
            assign(target, value)

    if backend != "tensorflow":
        ops.cond(condition, assign_new, lambda: None)
        return
    import tensorflow as tf

    def once(count):
        assign_new()
        return count + 1

    def cross_replica(strategy, condition):
        trips = ops.cast(strategy.experimental_local_results(condition)[0], "int32")
        ops.while_loop(
            lambda count: count < trips,
            once,
            ops.zeros((), "int32"),
            maximum_iterations=1,
        )

    context = tf.distribute.get_replica_context()
    if context is None:
        cross_replica(tf.distribute.get_strategy(), condition)
    else:
        context.merge_call(cross_replica, args=(condition,))


def _plus_zero(gradient, zero):
    """`gradient + zero` (a scalar 0 the step must wait for), sparse ones kept sparse.

    Sparse gradients are TensorFlow `IndexedSlices` and JAX `BCOO`: their values
    take the zero.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            values = ops.add(gradient.values, ops.cast(zero, gradient.values.dtype))
            return tf.IndexedSlices(values, gradient.indices, gradient.dense_shape)
    elif backend == "jax":
        import jax.experimental.sparse as jax_sparse

        if isinstance(gradient, jax_sparse.BCOO):
            data = ops.add(gradient.data, ops.cast(zero, gradient.data.dtype))
            return jax_sparse.BCOO((data, gradient.indices), shape=gradient.shape)
    return ops.add(gradient, ops.cast(zero, gradient.dtype))


def _read(operands):
    """The operands with each variable in a list replaced by its current value."""
    return [
        [ops.convert_to_tensor(x) for x in operand]
        if isinstance(operand, (list, tuple))
        else operand
        for operand in operands
    ]


def _synced_values(fast, slow, slow_step_size):
    """`phi + alpha (theta - phi)` for each pair."""
    return [
        ops.add(s, ops.multiply(ops.subtract(f, s), ops.cast(slow_step_size, s.dtype)))
        for f, s in zip(fast, slow)
    ]


def _synced_pair(fast, slow, slow_step_size):
    new = _synced_values(fast, slow, slow_step_size)
    return new + new


def _unchanged_pair(fast, slow, slow_step_size):
    return list(fast) + list(slow)


def _started_slow(fast, slow, flags, started, now_started):
    """`phi <- theta` where the flag is 0, `phi` kept where it is 1; flags updated."""
    new = [
        ops.where(ops.greater(flag, 0.0), s, ops.cast(f, s.dtype))
        for f, s, flag in zip(fast, slow, flags)
    ]
    return new + [now_started]


def _unchanged_slow(fast, slow, flags, started, now_started):
    return list(slow) + [started]


if LookAhead.__doc__ is not None:
    LookAhead.__doc__ = LookAhead.__doc__.replace(
        "{{base_kwargs}}", _common.BASE_KWARGS_DOC
    )
