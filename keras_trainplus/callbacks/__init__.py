"""keras_trainplus.callbacks."""

__all__ = []

# Ensembles: snapshot ensembles and stochastic weight averaging.
from keras_trainplus.callbacks.batch_norm_recalibration import (  # noqa: E402
    recalibrate_batch_norm,
)
from keras_trainplus.callbacks.snapshot_ensemble import SnapshotEnsemble  # noqa: E402
from keras_trainplus.callbacks.stochastic_weight_averaging import (  # noqa: E402
    StochasticWeightAveraging,
)

__all__ += [
    "SnapshotEnsemble",
    "StochasticWeightAveraging",
    "recalibrate_batch_norm",
]
