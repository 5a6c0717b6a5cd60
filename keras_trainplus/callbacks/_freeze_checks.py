"""What `FreezeUnfreeze` needs from the model and its optimizer, checked up front.

The callback never changes the optimizer: a multiplier on the backbone's learning
rate is the optimizer's (`LearningRateMultipliers`), so nothing the callback does
to it can outlive `fit`. These checks make a model that cannot train as asked fail
before the first step, with the line to write.
"""

import keras

from keras_trainplus import _compat
from keras_trainplus.optimizers import LearningRateMultipliers
from keras_trainplus.optimizers._common import is_multi_optimizer
from keras_trainplus.optimizers._common import optimizer_chain

# Relative tolerance on a multiplier, which the optimizer stores in float32.
_RTOL = 1e-6


def _frozen_backbone_error():
    return ValueError(
        "FreezeUnfreeze: the backbone has no trainable weights, so the optimizer "
        "cannot have been built to update them. Compile the model with the "
        "backbone trainable; the callback freezes it itself before the first "
        "step. A model saved while FreezeUnfreeze had the backbone frozen (e.g. by "
        "ModelCheckpoint during the frozen epochs) keeps those `trainable` flags; "
        "to resume from it, build and compile the model as for the first fit "
        "instead of loading it, then `model.optimizer.build("
        "model.trainable_variables)`, `model.load_weights(path)` (the weights and "
        "the optimizer state) and fit with the callback and `initial_epoch` set "
        "to the number of epochs the checkpoint had trained."
    )


def check(model, backbone_variables, multiplier):
    """Raises `ValueError` unless `model.fit` can train the backbone as asked.

    Args:
        model: the model being trained, with the user's `trainable` flags.
        backbone_variables: all the backbone's weights.
        multiplier: `backbone_learning_rate_multiplier` (`None`: any).
    """
    trainable = model.trainable_variables
    backbone_ids = {id(v) for v in backbone_variables}
    training = [v for v in trainable if id(v) in backbone_ids]
    if not training:
        raise _frozen_backbone_error()
    chain = optimizer_chain(model.optimizer)
    if any(is_multi_optimizer(o) for o in chain):
        raise ValueError(
            "FreezeUnfreeze does not support keras.optimizers.MultiOptimizer: "
            "while layers are frozen Keras passes the optimizer only the trainable "
            "variables, and MultiOptimizer requires all the variables it was built "
            "on. For per-group learning rates use one optimizer in "
            "keras_trainplus.optimizers.LearningRateMultipliers(optimizer, "
            "{layer_or_pattern: multiplier, ...})."
        )
    built = _compat.optimizer_built_variables(chain[-1])
    if built is None:
        model.optimizer.build(trainable)
    else:
        known = {id(v) for v in built}
        unknown = [v.path for v in trainable if id(v) not in known]
        if unknown:
            raise ValueError(
                f"FreezeUnfreeze: the optimizer was built without {len(unknown)} "
                f"variables that will train (e.g. {unknown[:3]}), so it could not "
                "update them after unfreezing. Compile with the backbone trainable "
                "(the callback freezes it itself) and a fresh optimizer."
            )
    if keras.backend.backend() == "jax":
        _check_jax(chain)
    if multiplier is not None:
        _check_multiplier(chain, training, multiplier)


def _check_jax(chain):
    entry = next(
        (o for o in chain if not isinstance(o, keras.optimizers.LossScaleOptimizer)),
        chain[-1],
    )
    if not isinstance(entry, LearningRateMultipliers):
        raise ValueError(
            "FreezeUnfreeze under JAX needs keras_trainplus.optimizers."
            "LearningRateMultipliers as the model's optimizer (inside Keras's "
            "LossScaleOptimizer, if any): Keras's JAX trainer hands the optimizer "
            "only the trainable variables, and only that wrapper accepts part of "
            "the variables it was built on. Compile with "
            f"LearningRateMultipliers(<your {type(entry).__name__}>, "
            "{backbone: multiplier}) (`{}` for none)."
        )
    if any(getattr(o, "use_ema", False) for o in chain):
        raise ValueError(
            "FreezeUnfreeze under JAX does not support optimizers with "
            "`use_ema=True` (the moving average would read frozen variables)."
        )


def _check_multiplier(chain, training, multiplier):
    found = {id(v): 1.0 for v in training}
    for optimizer in chain:
        if isinstance(optimizer, LearningRateMultipliers):
            for variable, value in optimizer.get_multipliers():
                if id(variable) in found:
                    found[id(variable)] *= value
    wrong = [
        (v.path, round(found[id(v)], 6))
        for v in training
        if abs(found[id(v)] - multiplier) > _RTOL * max(1.0, multiplier)
    ]
    if wrong:
        raise ValueError(
            f"FreezeUnfreeze(backbone_learning_rate_multiplier={multiplier}): the "
            f"optimizer trains {len(wrong)} of the backbone's {len(training)} "
            f"weights at another multiple of the learning rate (e.g. {wrong[:3]}). "
            "The optimizer applies the multiplier: compile with "
            "keras_trainplus.optimizers.LearningRateMultipliers(optimizer, "
            f"{{backbone: {multiplier}}}) (`backbone` the layer, or a glob pattern "
            "on its weights' paths), or pass backbone_learning_rate_multiplier="
            "None to train with the optimizer's multipliers as they are (e.g. "
            "layer_decay's)."
        )
