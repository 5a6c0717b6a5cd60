"""keras_trainplus.ensemble: pooling the predictions of several models or views.

`AveragingEnsemble` is a `keras.Model` that averages the probabilities or logits
of several member models, or counts their votes (e.g. the snapshots saved by
`keras_trainplus.callbacks.SnapshotEnsemble`, loaded with `from_files`).
`TestTimeAugmentation` wraps an image model and averages its predictions over
flipped, cropped and rescaled views of each input. Both compile, evaluate, predict
(under `jit_compile=True` too) and save like any Keras model.
"""

from keras_trainplus.ensemble.averaging import AveragingEnsemble
from keras_trainplus.ensemble.tta import TestTimeAugmentation

__all__ = [
    "AveragingEnsemble",
    "TestTimeAugmentation",
]
