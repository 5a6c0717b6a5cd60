"""keras_trainplus.callbacks."""

from keras_trainplus.callbacks.early_stopping import EarlyStopping
from keras_trainplus.callbacks.freeze_unfreeze import FreezeUnfreeze

__all__ = [
    "EarlyStopping",
    "FreezeUnfreeze",
]
