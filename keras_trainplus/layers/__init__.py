"""Image augmentation layers that run in `tf.data` under every backend and in models.

Geometric layers (`RandomAffine`, `RandomLensDistortion`, `RandomResizedCrop`,
`RandomScaleCrop`, fused by `GeometricChain`) read each output pixel once; the crop
layers also take encoded image files and decode a JPEG only inside the crop window.
`PCALighting` adds AlexNet's colour noise; `Mixup` mixes the samples of a batch and
their labels (Mixup and CutMix).
"""

from keras_trainplus.layers.geometric_chain import GeometricChain
from keras_trainplus.layers.mixup import Mixup
from keras_trainplus.layers.pca_lighting import PCALighting
from keras_trainplus.layers.random_affine import RandomAffine
from keras_trainplus.layers.random_lens_distortion import RandomLensDistortion
from keras_trainplus.layers.random_resized_crop import RandomResizedCrop
from keras_trainplus.layers.random_scale_crop import RandomScaleCrop

__all__ = [
    "GeometricChain",
    "Mixup",
    "PCALighting",
    "RandomAffine",
    "RandomLensDistortion",
    "RandomResizedCrop",
    "RandomScaleCrop",
]
