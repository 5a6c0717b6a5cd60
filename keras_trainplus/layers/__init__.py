"""keras_trainplus.layers."""

from keras_trainplus.layers.mixup import Mixup
from keras_trainplus.layers.pca_lighting import PCALighting
from keras_trainplus.layers.random_affine import RandomAffine
from keras_trainplus.layers.random_lens_distortion import RandomLensDistortion
from keras_trainplus.layers.random_resized_crop import RandomResizedCrop
from keras_trainplus.layers.random_scale_crop import RandomScaleCrop

__all__ = [
    "Mixup",
    "PCALighting",
    "RandomAffine",
    "RandomLensDistortion",
    "RandomResizedCrop",
    "RandomScaleCrop",
]
