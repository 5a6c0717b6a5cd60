"""keras_trainplus.layers."""

from keras_trainplus.layers.random_affine import RandomAffine
from keras_trainplus.layers.random_lens_distortion import RandomLensDistortion
from keras_trainplus.layers.random_resized_crop import RandomResizedCrop
from keras_trainplus.layers.random_scale_crop import RandomScaleCrop

__all__ = [
    "RandomAffine",
    "RandomLensDistortion",
    "RandomResizedCrop",
    "RandomScaleCrop",
]
