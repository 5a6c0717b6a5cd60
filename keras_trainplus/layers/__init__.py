"""keras_trainplus.layers."""

from keras_trainplus.layers.mixup import Mixup
from keras_trainplus.layers.pca_lighting import PCALighting

__all__ = ["Mixup", "PCALighting"]
