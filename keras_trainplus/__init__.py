"""keras_trainplus: training techniques for Keras 3, in-graph on every backend.

Optimizers, learning-rate schedules, augmentation layers, callbacks, ensembles and
hyperparameter search, ready for `model.compile` / `model.fit` under TensorFlow,
JAX and PyTorch. Every public object is registered under the package name
`keras_trainplus`, so models that use them save and load with Keras's own
`model.save()` / `keras.saving.load_model()`.

Usage: `import keras_trainplus as ktp`.
"""

from keras_trainplus import callbacks
from keras_trainplus import ensemble
from keras_trainplus import layers
from keras_trainplus import optimizers
from keras_trainplus import schedules
from keras_trainplus.version import __version__

__all__ = [
    "__version__",
    "callbacks",
    "ensemble",
    "layers",
    "optimizers",
    "schedules",
]
