"""KerasTuner's random and grid search, without a hard dependency on TensorBoard.

KerasTuner imports TensorBoard at the start of every trial under the TensorFlow
backend, which fails where TensorBoard is not installed (TensorFlow 2.20 and later
no longer install it) although no TensorBoard callback is in use. These subclasses
run that step only when a TensorBoard callback is present (see
`_compat.TensorBoardOnDemandTuner`, the private hook it overrides) and change
nothing else; the search itself is KerasTuner's.
"""

import keras_tuner

from keras_trainplus import _compat


class RandomSearch(_compat.TensorBoardOnDemandTuner, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch`, importing TensorBoard only when it is used."""


class GridSearch(_compat.TensorBoardOnDemandTuner, keras_tuner.GridSearch):
    """`keras_tuner.GridSearch`, importing TensorBoard only when it is used."""
