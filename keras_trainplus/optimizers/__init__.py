"""keras_trainplus.optimizers: Nesterov, RAdam, LookAhead, Ranger, per-layer rates."""

from keras_trainplus.optimizers.layerwise_decay import layer_decay
from keras_trainplus.optimizers.learning_rate_multipliers import LearningRateMultipliers
from keras_trainplus.optimizers.lookahead import LookAhead
from keras_trainplus.optimizers.nesterov import Nesterov
from keras_trainplus.optimizers.radam import RAdam
from keras_trainplus.optimizers.ranger import Ranger

__all__ = [
    "LearningRateMultipliers",
    "LookAhead",
    "Nesterov",
    "RAdam",
    "Ranger",
    "layer_decay",
]
