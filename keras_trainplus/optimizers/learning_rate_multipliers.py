"""LearningRateMultipliers: one optimizer, a learning-rate factor per variable."""

import copy
import warnings

import keras
import numpy as np
from keras import ops

from keras_trainplus import _compat
from keras_trainplus._validation import PACKAGE
from keras_trainplus._validation import check_number
from keras_trainplus.optimizers import _common
from keras_trainplus.optimizers import _multiplier_keys

# Keras's base arguments and their defaults. With an inner optimizer stepped through
# its `update_step`, the wrapper runs Keras's step machinery itself: clipping, EMA
# and loss scaling go on the wrapper, weight decay stays on the inner optimizer
# (scaled per variable), gradient accumulation is not supported.
_BASE_DEFAULTS = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}
_ON_WRAPPER = (
    "clipnorm",
    "global_clipnorm",
    "clipvalue",
    "use_ema",
    "loss_scale_factor",
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LearningRateMultipliers(_common.InnerOptimizerRate, keras.optimizers.Optimizer):
    """Wraps an optimizer; each variable trains at its own multiple of the rate.

    Discriminative learning rates (Howard & Ruder 2018, "Universal Language Model
    Fine-tuning for Text Classification", arXiv:1801.06146; fastai's
    `slice(lr/100, lr)`) and layer-wise learning-rate decay (Clark et al. 2020,
    ELECTRA, arXiv:2003.10555; Bao et al. 2021, BEiT, arXiv:2106.08254; see
    `layer_decay`). Each variable `x` gets the multiplier `m` of the first key of
    `multipliers` that selects it (`default` if none does), and the inner
    optimizer's own rule runs on it at the learning rate `m * lr_t`:

    ```
    x <- x - (m * lr_t) * weight_decay * x      (the inner's decoupled decay)
    x, slots <- inner.update_step(g, x, m * lr_t)
    ```

    This is exactly the inner optimizer with learning rate `m * lr_t` for that
    variable, with any schedule and with slots that accumulate the rate (SGD's
    momentum velocity, `v <- momentum * v - lr * g`): SGD (with or without
    momentum, Nesterov), Adam, AdamW, RMSprop, Adagrad, Lion, this package's
    `RAdam` and `Nesterov`, any optimizer that takes its step in Keras's public
    `update_step`. `m = 0` leaves a variable in place; its slots still update.

    Around an optimizer that does not step through `update_step` (a
    `LossScaleOptimizer`, `LookAhead`, `Ranger`, `Nadam`), the multiplier scales
    the step that optimizer takes, `x <- x + m (x_inner - x)`: the same for
    optimizers whose step is proportional to the rate and whose slots do not
    depend on it (Adam, AdamW, Lion, ...); with momentum slots it is the same while
    `m` stays constant. For `LookAhead`/`Ranger` that scales the fast steps and
    the synchronisation; put the wrapper inside (`LookAhead(LearningRateMultipliers(
    Adam(), ...))`) for LookAhead over an optimizer at scaled rates. Under
    `mixed_float16` Keras puts its `LossScaleOptimizer` around this wrapper.

    Conventions:

    - Keys: a layer (all its weights), a variable, a layer name (matches the
      variables whose `path` has it as a layer component: `"head"` matches
      `head/kernel`), a glob pattern on variable paths (`"*/bias"`,
      `"stack0_*"`), or a list of exact paths. A string key that matches no
      variable warns when the optimizer is built.
    - The multipliers are one float32 optimizer variable (`multiplier_values`, in
      the order of the variables the optimizer was built on), so they are saved
      with the model and `set_multipliers` can change them between steps without
      retracing (from a callback: in `on_epoch_begin`, since under JAX `fit` holds
      the state during an epoch).
    - Serialization: layers and variables are written to the config as their
      weights' paths; the multipliers in force are restored from the saved
      optimizer state, so `keras.saving.load_model` resumes exactly.
    - `learning_rate` reads and writes go to the inner optimizer (schedules,
      `ReduceLROnPlateau`); `variables` are the wrapper's (step count,
      multipliers) followed by the inner optimizer's.
    - Frozen variables: the wrapper updates any subset of the variables it was
      built on. Under JAX, Keras's trainer hands `stateless_apply` only the model's
      currently trainable variables; the wrapper places them among the built ones
      (by their `trainable` flags, in the model's order), gives the others no
      gradient and calls Keras's `stateless_apply` on the whole list.

    Args:
        optimizer: The inner optimizer: a `keras.optimizers.Optimizer` instance, a
            string identifier such as `"adam"`, or a serialized optimizer config.
        multipliers: A dict, or a list of `(key, multiplier)` pairs (variables are
            not hashable), mapping keys (see above) to multipliers `>= 0`; the
            first key that selects a variable wins.
        default: Float `>= 0`, the multiplier of the variables no key selects.
            Defaults to `1.0`.
        **kwargs: `name`; with an inner optimizer stepped through `update_step`
            also `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`,
            `ema_momentum`, `ema_overwrite_frequency` and `loss_scale_factor`,
            which apply around the scaled steps and must be set here rather than
            on the inner optimizer. Weight decay is set on the inner optimizer.

    Example:

    >>> import keras, keras_trainplus as ktp
    >>> backbone = keras.Sequential([keras.layers.Dense(8)], name="backbone")
    >>> model = keras.Sequential([keras.Input((4,)), backbone, keras.layers.Dense(1)])
    >>> optimizer = ktp.optimizers.LearningRateMultipliers(
    ...     keras.optimizers.Adam(1e-3), {backbone: 0.1})
    >>> model.compile(optimizer=optimizer, loss="mse")
    >>> _ = model.fit(keras.ops.ones((8, 4)), keras.ops.ones((8, 1)), verbose=0)
    >>> [round(m, 3) for _, m in optimizer.get_multipliers()]
    [0.1, 0.1, 1.0, 1.0]
    """

    def __init__(self, optimizer, multipliers, default=1.0, **kwargs):
        optimizer = _common.get_optimizer(optimizer)
        if _common.is_multi_optimizer(optimizer):
            raise ValueError(
                "Argument `optimizer`: a MultiOptimizer already gives each group of "
                "variables its own optimizer; wrap one optimizer and give the "
                "groups multipliers instead."
            )
        _common.refuse_learning_rate(kwargs)
        scales_rate = _compat.steps_through_update_step(optimizer)
        _check_base_arguments(optimizer, kwargs, scales_rate)
        super().__init__(learning_rate=0.0, **kwargs)
        self.optimizer = optimizer
        self.multipliers = _multiplier_keys.normalize(multipliers)
        self.default = check_number("default", default, 0)
        self._scales_rate = scales_rate

    def build(self, var_list):
        if self.built:
            return
        self.optimizer.build(var_list)
        super().build(var_list)
        values = _multiplier_keys.resolve(self.multipliers, self.default, var_list)
        self.multiplier_values = self.add_variable(
            shape=(len(var_list),),
            initializer=_constant(values),
            dtype="float32",
            name="multipliers",
        )

    @property
    def variables(self):
        return super().variables + self.optimizer.variables

    def _multiplier(self, variable):
        index = _compat.optimizer_variable_index(self, variable)
        return ops.cast(self.multiplier_values[index], variable.dtype)

    def update_step(self, gradient, variable, learning_rate):
        rate = ops.multiply(
            ops.cast(learning_rate, variable.dtype), self._multiplier(variable)
        )
        inner = self.optimizer
        if inner.weight_decay is not None and _compat.uses_weight_decay(
            inner, variable
        ):
            decay = ops.cast(inner.weight_decay, variable.dtype)
            self.assign(variable, variable - variable * decay * rate)
        inner.update_step(gradient, variable, rate)

    def apply(self, grads, trainable_variables=None):
        if not self._scales_rate:
            return self._apply_scaled_step(grads, trainable_variables)
        super().apply(grads, trainable_variables)
        if len(grads):
            # The inner optimizer's step count (bias corrections, schedules)
            # advances with each step taken for it.
            self.optimizer.iterations.assign_add(1)

    def _apply_scaled_step(self, grads, trainable_variables):
        if not len(grads):
            return
        grads = list(grads)
        if trainable_variables is None:
            variables = _compat.optimizer_built_variables(self)
        else:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
        stepped = [v for g, v in zip(grads, variables) if g is not None]
        before = [ops.copy(ops.convert_to_tensor(v)) for v in stepped]
        if keras.backend.backend() == "jax":
            _common.stateless_step(
                self.optimizer,
                grads,
                variables,
                _compat.optimizer_built_variables(self),
            )
        else:
            self.optimizer.apply(grads, variables)
        for variable, old in zip(stepped, before):
            step = ops.subtract(variable, old)
            self.assign(variable, old + self._multiplier(variable) * step)
            if variable.constraint is not None:
                self.assign(variable, variable.constraint(variable))
        self.iterations.assign_add(1)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        built = _compat.optimizer_built_variables(self)
        if built is None or len(trainable_variables) == len(built):
            return super().stateless_apply(
                optimizer_variables, grads, trainable_variables
            )
        current = _current_subset(built, trainable_variables)
        if self.use_ema or getattr(self.optimizer, "use_ema", False):
            raise ValueError(
                "LearningRateMultipliers cannot update part of its variables with "
                "`use_ema=True` under JAX: the moving average would read the "
                "frozen variables, which Keras's trainer does not pass in."
            )
        index = {id(v): i for i, v in enumerate(built)}
        values = [_placeholder(v) for v in built]
        all_grads = [None] * len(built)
        for variable, value, grad in zip(current, trainable_variables, grads):
            values[index[id(variable)]] = value
            all_grads[index[id(variable)]] = grad
        with warnings.catch_warnings():
            # The frozen variables get no gradient, on purpose.
            warnings.filterwarnings("ignore", "Gradients do not exist for variables")
            new_values, new_state = super().stateless_apply(
                optimizer_variables, all_grads, values
            )
        return [new_values[index[id(v)]] for v in current], new_state

    def set_multipliers(self, multipliers, default=None):
        """Resolves new multipliers and assigns them, without retracing.

        Args:
            multipliers: as in the constructor.
            default: the new default; `None` keeps the current one.
        """
        built = _compat.optimizer_built_variables(self)
        if built is None:
            raise ValueError(
                "`set_multipliers()` needs a built optimizer: call "
                "`optimizer.build(model.trainable_variables)` or train first."
            )
        entries = _multiplier_keys.normalize(multipliers)
        if default is not None:
            default = check_number("default", default, 0)
        default = self.default if default is None else default
        values = _multiplier_keys.resolve(entries, default, built)
        self.multiplier_values.assign(np.asarray(values, "float32"))
        self.multipliers, self.default = entries, default

    def get_multipliers(self):
        """The `(variable, multiplier)` pairs in force, one per built variable."""
        built = _compat.optimizer_built_variables(self)
        if built is None:
            return []
        values = ops.convert_to_numpy(self.multiplier_values).tolist()
        return list(zip(built, values))

    def set_weights(self, weights):
        # Keras's `set_weights` assigns the optimizer's own variables only.
        own = len(super().variables)
        if self.built and len(weights) != own + len(self.optimizer.variables):
            raise ValueError(
                f"`set_weights()` expects {len(self.variables)} arrays (the "
                f"optimizer's `variables`). Received: {len(weights)}"
            )
        super().set_weights(weights[:own])
        self.optimizer.set_weights(weights[own:])

    def get_config(self):
        config = self._wrapper_config()
        config.update(
            {
                "multipliers": [
                    [_multiplier_keys.to_config(key), value]
                    for key, value in self.multipliers
                ],
                "default": self.default,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Deep copy: Keras's `from_config`s pop keys from the config they are given.
        config = copy.deepcopy(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def _check_base_arguments(optimizer, kwargs, scales_rate):
    """Refuses base arguments that would silently not apply (see `_BASE_DEFAULTS`)."""
    name = type(optimizer).__name__
    for argument, default in _BASE_DEFAULTS.items():
        given = kwargs.get(argument, default)
        on_inner = getattr(optimizer, argument, default)
        if argument == "weight_decay" and given is not None:
            raise ValueError(
                "Argument `weight_decay` is not accepted: set it on the inner "
                "optimizer, where it is scaled with each variable's rate. Received: "
                f"weight_decay={given!r}"
            )
        accumulates = given or (scales_rate and on_inner)
        if argument == "gradient_accumulation_steps" and accumulates:
            raise ValueError(
                "LearningRateMultipliers does not support "
                "`gradient_accumulation_steps`. Received: gradient_accumulation_"
                f"steps={accumulates!r}"
            )
        if not scales_rate and argument != "weight_decay" and given != default:
            raise ValueError(
                f"LearningRateMultipliers around {name} (which does not take its "
                f"step in `update_step`) does not support `{argument}`: set it on "
                f"the inner optimizer. Received: {argument}={given!r}"
            )
        if scales_rate and argument in _ON_WRAPPER and on_inner not in (None, False):
            raise ValueError(
                f"Argument `optimizer`: its `{argument}={on_inner!r}` would not "
                f"apply, since LearningRateMultipliers calls {name}'s `update_step` "
                "with the scaled rates itself. Set it on the wrapper instead: "
                f"LearningRateMultipliers(optimizer, multipliers, {argument}=...)."
            )


def _current_subset(built, values):
    """The built variables `values` stand for: the trainable ones, in order."""
    current = [v for v in built if v.trainable]
    shapes = [tuple(v.shape) for v in current]
    if shapes != [tuple(value.shape) for value in values]:
        raise ValueError(
            f"LearningRateMultipliers.stateless_apply received {len(values)} "
            f"variables; it was built on {len(built)}, of which {len(current)} are "
            "trainable now. Pass all the variables it was built on, or exactly its "
            "currently trainable ones, in the model's order."
        )
    return current


def _placeholder(variable):
    # Never read: the variable gets no gradient and its new value is dropped. NaN
    # makes any use visible.
    fill = float("nan") if "float" in str(variable.dtype) else 0
    return ops.full(variable.shape, fill, variable.dtype)


def _constant(values):
    def initializer(shape, dtype):
        return ops.convert_to_tensor(np.asarray(values, dtype=dtype).reshape(shape))

    return initializer
