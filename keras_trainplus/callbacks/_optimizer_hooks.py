"""Per-fit hooks on the model's optimizer used by `FreezeUnfreeze`.

Two instance-level overrides, installed at the start of `fit` and removed at its end
(the optimizer's class, config and saved state are untouched):

- `apply` of the *stepping* optimizer (the innermost one: the inner optimizer of a
  `LossScaleOptimizer`, of a keras_trainplus `LookAhead`/`Ranger`) scales the step
  of chosen variables (the backbone's) by a constant `multiplier`:
  `x <- x_before + multiplier * (x_after - x_before)`, where `x_after` is what the
  optimizer's own `apply` computed. This is the discriminative learning rate,
  computed in the compiled train step on every backend. Wrappers keep working on
  the scaled fast steps (loss scaling, LookAhead's slow weights).
- `stateless_apply` (JAX only) of the *entry* optimizer (the outermost one that is
  not a `LossScaleOptimizer`, which only passes values through) updates the
  model's *current* trainable variables. Keras's JAX trainer hands the optimizer
  exactly the model's trainable variables, and the stock `stateless_apply` insists
  that they be all the variables the optimizer was built on; with part of the
  backbone frozen they are a subset. The override maps that subset explicitly and
  calls the public `apply(grads, variables)`, which accepts any subset of known
  variables and leaves the slots of the others untouched. The frozen variables'
  values are not available inside JAX's train step (the trainer detaches them);
  a wrapper that passes every built variable through to its inner optimizer
  (LookAhead) sees NaN placeholders for them, which it hands back unchanged and
  which are discarded. Optimizers that read variables they do not update
  (`use_ema=True`) are therefore refused under JAX.
"""

import warnings
import weakref

import keras
from keras import ops

from keras_trainplus import _compat
from keras_trainplus.optimizers._common import optimizer_chain

# optimizer -> names of the methods this module overrode on the instance
_INSTALLED = weakref.WeakKeyDictionary()


def chain(optimizer):
    """The optimizer and the ones it wraps, outermost first."""
    return optimizer_chain(optimizer)


def _entry(optimizers):
    for optimizer in optimizers:
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer
    return optimizers[-1]


def _scaled_apply(optimizer, base_apply, scaled_ids, multiplier):
    def apply(grads, trainable_variables=None):
        grads = list(grads)
        if trainable_variables is None:
            variables = _compat.optimizer_built_variables(optimizer)
        else:
            variables = list(trainable_variables)
        scaled = [
            v for g, v in zip(grads, variables) if g is not None and id(v) in scaled_ids
        ]
        before = [ops.copy(v.value) for v in scaled]
        base_apply(grads, trainable_variables)
        for variable, old in zip(scaled, before):
            step = ops.subtract(variable.value, old)
            variable.assign(ops.add(old, ops.multiply(step, multiplier)))

    return apply


def _subset_stateless_apply(optimizer, model):
    def stateless_apply(optimizer_variables, grads, trainable_variables):
        variables = model.trainable_variables
        if len(variables) != len(trainable_variables):
            raise ValueError(
                f"`stateless_apply` received {len(trainable_variables)} variables "
                f"but the model has {len(variables)} trainable variables."
            )
        current = {id(v) for v in variables}
        frozen = [
            v
            for v in _compat.optimizer_built_variables(optimizer)
            if id(v) not in current
        ]
        mapping = list(zip(variables, trainable_variables))
        mapping += [(v, ops.full(v.shape, float("nan"), v.dtype)) for v in frozen]
        mapping += list(zip(optimizer.variables, optimizer_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            with warnings.catch_warnings():
                # A wrapper (LookAhead) hands its inner optimizer no gradient for
                # the frozen variables, on purpose.
                warnings.filterwarnings(
                    "ignore", "Gradients do not exist for variables"
                )
                optimizer.apply(grads, variables)
        return (
            [scope.get_current_value(v) for v in variables],
            [scope.get_current_value(v) for v in optimizer.variables],
        )

    return stateless_apply


def install(optimizer, model, scaled_variables, multiplier):
    """Installs the hooks on `optimizer`'s chain for one `fit`."""
    optimizers = chain(optimizer)
    uninstall(optimizer)
    jax = keras.backend.backend() == "jax"
    if jax and any(getattr(o, "use_ema", False) for o in optimizers):
        raise ValueError(
            "FreezeUnfreeze under JAX does not support optimizers with "
            "`use_ema=True` (the moving average would read frozen variables)."
        )
    if multiplier != 1.0:
        stepping = optimizers[-1]
        scaled_ids = frozenset(id(v) for v in scaled_variables)
        stepping.apply = _scaled_apply(stepping, stepping.apply, scaled_ids, multiplier)
        _INSTALLED.setdefault(stepping, []).append("apply")
    if jax:
        entry = _entry(optimizers)
        entry.stateless_apply = _subset_stateless_apply(entry, model)
        _INSTALLED.setdefault(entry, []).append("stateless_apply")


def uninstall(optimizer):
    """Removes the hooks from `optimizer`'s chain, restoring the class methods."""
    for member in chain(optimizer):
        for name in _INSTALLED.pop(member, ()):
            delattr(member, name)
