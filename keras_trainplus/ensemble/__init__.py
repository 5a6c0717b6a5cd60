"""keras_trainplus.ensemble."""

from keras_trainplus.ensemble.averaging import AveragingEnsemble
from keras_trainplus.ensemble.tta import TestTimeAugmentation

__all__ = [
    "AveragingEnsemble",
    "TestTimeAugmentation",
]
