"""keras_trainplus.callbacks: early stopping, transfer learning and ensembling."""

from keras_trainplus.callbacks.batch_norm_recalibration import recalibrate_batch_norm
from keras_trainplus.callbacks.early_stopping import EarlyStopping
from keras_trainplus.callbacks.freeze_unfreeze import FreezeUnfreeze
from keras_trainplus.callbacks.snapshot_ensemble import SnapshotEnsemble
from keras_trainplus.callbacks.stochastic_weight_averaging import (
    StochasticWeightAveraging,
)

__all__ = [
    "EarlyStopping",
    "FreezeUnfreeze",
    "SnapshotEnsemble",
    "StochasticWeightAveraging",
    "recalibrate_batch_norm",
]
