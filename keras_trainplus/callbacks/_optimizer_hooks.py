"""Per-fit hooks on the model's optimizer used by `FreezeUnfreeze`.

Two instance-level overrides, installed at the start of `fit` and removed at its end
(the optimizer's class and its saved state are untouched):

- `apply` scales the step of chosen variables (the backbone's) by a constant
  `multiplier`: `x <- x_before + multiplier * (x_after - x_before)`, where `x_after`
  is what the optimizer's own `apply` computed. This is the discriminative learning
  rate, computed in the compiled train step on every backend.
- `stateless_apply` (JAX only) updates the model's *current* trainable variables.
  Keras's JAX trainer hands the optimizer exactly the model's trainable variables,
  and the stock `stateless_apply` insists that they be all the variables the
  optimizer was built on; with part of the backbone frozen they are a subset. The
  override maps that subset explicitly and calls the public `apply(grads,
  variables)`, which accepts any subset of known variables and keeps the slots of
  every other variable untouched.

The hooks go on the optimizer that updates the weights: the inner optimizer of a
`LossScaleOptimizer` (which only rescales gradients and skips non-finite steps), the
optimizer itself otherwise.
"""

import weakref

import keras
from keras import ops

# optimizer -> names of the attributes this module set on it
_INSTALLED = weakref.WeakKeyDictionary()


def updating_optimizer(optimizer):
    """The optimizer whose `apply` changes the weights (unwraps loss scaling)."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer


def _scaled_apply(base_apply, scaled_ids, multiplier):
    def apply(grads, trainable_variables=None):
        if trainable_variables is None:
            raise ValueError(
                "FreezeUnfreeze scales the backbone's steps and needs the optimizer "
                "to be called with explicit variables: `apply(grads, variables)`."
            )
        variables = list(trainable_variables)
        scaled = [v for v in variables if id(v) in scaled_ids]
        before = [ops.copy(v.value) for v in scaled]
        base_apply(grads, variables)
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
        mapping = list(zip(variables, trainable_variables))
        mapping += list(zip(optimizer.variables, optimizer_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            optimizer.apply(grads, variables)
        return (
            [scope.get_current_value(v) for v in variables],
            [scope.get_current_value(v) for v in optimizer.variables],
        )

    return stateless_apply


def install(optimizer, model, scaled_variables, multiplier):
    """Installs the hooks on `optimizer` (the updating one) for one `fit`."""
    uninstall(optimizer)
    names = []
    if multiplier != 1.0:
        scaled_ids = frozenset(id(v) for v in scaled_variables)
        optimizer.apply = _scaled_apply(optimizer.apply, scaled_ids, multiplier)
        names.append("apply")
    if keras.backend.backend() == "jax":
        optimizer.stateless_apply = _subset_stateless_apply(optimizer, model)
        names.append("stateless_apply")
    _INSTALLED[optimizer] = names


def uninstall(optimizer):
    """Removes the hooks, restoring the class's own methods."""
    for name in _INSTALLED.pop(optimizer, ()):
        delattr(optimizer, name)
