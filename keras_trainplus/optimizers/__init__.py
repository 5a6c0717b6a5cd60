"""keras_trainplus.optimizers: Nesterov, RAdam, LookAhead and Ranger."""

from keras_trainplus.optimizers.lookahead import LookAhead
from keras_trainplus.optimizers.nesterov import Nesterov
from keras_trainplus.optimizers.radam import RAdam
from keras_trainplus.optimizers.ranger import Ranger

__all__ = ["LookAhead", "Nesterov", "RAdam", "Ranger"]
