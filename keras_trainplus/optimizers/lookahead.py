"""LookAhead: slow weights that follow any Keras optimizer's fast weights."""

import copy

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.optimizers import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class LookAhead(keras.optimizers.Optimizer):
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

    - `phi` is initialised from the variables' values when the optimizer is built
      (for `model.fit`, the weights the model starts training from).
    - The sync counter is the inner optimizer's own `iterations`. A step that the
      inner optimizer skips (e.g. `keras.optimizers.LossScaleOptimizer` on
      non-finite gradients: its `iterations` does not advance) neither advances the
      counter nor touches `phi` or `theta`.
    - The sync is one conditional over all variables (`lax.cond` on JAX; on
      TensorFlow a `while_loop` run 0 or 1 times, which XLA updates in place where
      a `cond` would copy every variable on every step): the other `k - 1` steps
      move no memory beyond the inner update. No retracing, no host round trip
      (except on PyTorch, whose conditionals are Python `if`s).
    - `learning_rate` reads and writes go to the inner optimizer, so
      `ReduceLROnPlateau` and `LearningRateScheduler` work. `LookAhead.iterations`
      counts calls to `apply`, as for every Keras optimizer.
    - Keras's base arguments given to `LookAhead` apply around the inner optimizer
      (e.g. `clipnorm` clips before the gradients reach it); the inner optimizer's
      own arguments apply as well.
    - `variables` holds `LookAhead`'s own variables (counter, slow weights) followed
      by the inner optimizer's, so all of it is saved with the model and carried by
      `stateless_apply` (JAX).
    - Final weights: after training the model holds the fast weights `theta`, as in
      the paper's Algorithm 1 and the authors' code; they equal `phi` right after a
      sync, i.e. when the number of inner steps is a multiple of `sync_period`. Call
      `swap_slow_weights()` to put `phi` into the model (e.g. to evaluate or save
      with the slow weights) and call it again to swap back.

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
        if isinstance(optimizer, (str, dict)):
            optimizer = keras.optimizers.get(optimizer)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "Argument `optimizer` must be a `keras.optimizers.Optimizer` "
                "instance, a string identifier or an optimizer config. "
                f"Received: optimizer={optimizer!r}"
            )
        if "learning_rate" in kwargs:
            raise ValueError(
                "Argument `learning_rate` is not accepted: the learning rate is the "
                "inner optimizer's; set it there. Received: "
                f"learning_rate={kwargs['learning_rate']!r}"
            )
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
        # The initial value is part of the variable's creation (TensorFlow builds
        # optimizers while tracing the train function, where a separate assign
        # would not run), and a copy (JAX variables would otherwise share one
        # buffer, which `model.fit` donates twice).
        self._slow_weights = [
            self.add_variable_from_reference(v, name="slow", initializer=_copy_of(v))
            for v in var_list
        ]

    @property
    def variables(self):
        return self._variables[:] + self.optimizer.variables

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.optimizer.learning_rate = learning_rate

    def scale_loss(self, loss):
        return self.optimizer.scale_loss(super().scale_loss(loss))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        before = ops.copy(ops.convert_to_tensor(self.optimizer.iterations))
        if keras.backend.backend() == "jax":
            self._stateless_inner_apply(grads, trainable_variables)
        else:
            self.optimizer.apply(grads, trainable_variables)
        after = ops.convert_to_tensor(self.optimizer.iterations)
        sync = ops.logical_and(
            ops.not_equal(after, before), ops.equal(after % self.sync_period, 0)
        )
        self._sync(sync, trainable_variables)

    def _stateless_inner_apply(self, grads, trainable_variables):
        # Under JAX the inner optimizer may branch with `ops.cond` (a
        # LossScaleOptimizer does), which must not assign inside its branches:
        # run it statelessly and write its results back (into the enclosing
        # StatelessScope when `stateless_apply` traces this step).
        all_grads = [None] * len(self._trainable_variables)
        for grad, variable in zip(grads, trainable_variables):
            all_grads[self._get_variable_index(variable)] = grad
        new_values, new_state = self.optimizer.stateless_apply(
            [v.value for v in self.optimizer.variables],
            all_grads,
            [v.value for v in self._trainable_variables],
        )
        for variable, value in zip(self._trainable_variables, new_values):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, new_state):
            variable.assign(value)

    def _sync(self, sync, variables):
        slow_weights = [
            self._slow_weights[self._get_variable_index(v)] for v in variables
        ]
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            # Branches of `lax.cond` must not assign: they return the new values.
            # Module-level branch functions keep JAX's trace cache warm when
            # running eagerly.
            new_fast, new_slow = jax.lax.cond(
                sync,
                _synced_pair,
                _unchanged_pair,
                [v.value for v in variables],
                [s.value for s in slow_weights],
                self.slow_step_size,
            )
            for variable, value in zip(variables, new_fast):
                variable.assign(value)
            for slow_weight, value in zip(slow_weights, new_slow):
                slow_weight.assign(value)
            return

        def assign_synced():
            new = _synced_values(
                [ops.convert_to_tensor(v) for v in variables],
                [ops.convert_to_tensor(s) for s in slow_weights],
                self.slow_step_size,
            )
            for variable, slow, value in zip(variables, slow_weights, new):
                self.assign(slow, value)
                self.assign(variable, value)

        if backend != "tensorflow":
            ops.cond(sync, assign_synced, lambda: None)
            return
        import tensorflow as tf

        def sync_once(count):
            assign_synced()
            return count + 1

        def cross_replica_sync(strategy, sync):
            # Assigning in cross-replica context updates every replica's copy.
            # A loop run 0 or 1 times rather than `cond`: XLA turns the variables a
            # `cond` assigns into outputs of both branches and copies all of them on
            # every step; a while loop updates them in place.
            trips = ops.cast(strategy.experimental_local_results(sync)[0], "int32")
            ops.while_loop(
                lambda count: count < trips,
                sync_once,
                ops.zeros((), "int32"),
                maximum_iterations=1,
            )

        context = tf.distribute.get_replica_context()
        if context is None:
            cross_replica_sync(tf.distribute.get_strategy(), sync)
        else:
            context.merge_call(cross_replica_sync, args=(sync,))

    def swap_slow_weights(self, var_list=None):
        """Swaps the values of the model's weights and of their slow weights.

        Calling it twice restores the original state. Use it to evaluate, predict or
        save with the slow weights `phi`, e.g. at the end of training.

        Args:
            var_list: the variables to swap; defaults to all the variables the
                optimizer was built with.
        """
        if not self.built:
            raise ValueError(
                "`swap_slow_weights()` needs a built optimizer: call "
                "`optimizer.build(model.trainable_variables)` or train first."
            )
        var_list = self._trainable_variables if var_list is None else var_list
        for variable in var_list:
            slow = self._slow_weights[self._get_variable_index(variable)]
            fast = ops.copy(ops.convert_to_tensor(variable))
            variable.assign(slow)
            slow.assign(fast)

    def finalize_variable_values(self, var_list):
        super().finalize_variable_values(var_list)
        self.optimizer.finalize_variable_values(var_list)

    def get_config(self):
        config = super().get_config()
        config.pop("learning_rate")
        config.update(
            {
                "optimizer": keras.saving.serialize_keras_object(self.optimizer),
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


def _copy_of(variable):
    """An initializer returning a copy of `variable`'s current value."""

    def initializer(shape, dtype):
        if keras.backend.backend() != "tensorflow":
            return ops.cast(ops.copy(ops.convert_to_tensor(variable)), dtype)
        import tensorflow as tf

        # Read eagerly: XLA cannot lift a creation whose value comes from the graph.
        with tf.init_scope():
            return ops.cast(ops.convert_to_numpy(variable), dtype)

    return initializer


def _synced_values(fast, slow, slow_step_size):
    """`phi + alpha (theta - phi)` for each pair."""
    return [
        ops.add(s, ops.multiply(ops.subtract(f, s), ops.cast(slow_step_size, s.dtype)))
        for f, s in zip(fast, slow)
    ]


def _synced_pair(fast, slow, slow_step_size):
    new = _synced_values(fast, slow, slow_step_size)
    return new, new


def _unchanged_pair(fast, slow, slow_step_size):
    return fast, slow


if LookAhead.__doc__ is not None:
    LookAhead.__doc__ = LookAhead.__doc__.replace(
        "{{base_kwargs}}", _common.BASE_KWARGS_DOC
    )
