"""KerasTuner's random and grid search, without a hard dependency on TensorBoard.

KerasTuner 1.4 imports `tensorboard.plugins.hparams` at the start of every trial
under the TensorFlow backend (in the private hook
`keras_tuner.Tuner._configure_tensorboard_dir`), to attach HParams logging to a
`keras.callbacks.TensorBoard` callback if the user passed one. TensorFlow 2.20 and
later no longer install TensorBoard, so every trial then fails with
`ModuleNotFoundError` although no TensorBoard callback is in use. These subclasses
run the hook only when a TensorBoard callback is present (which needs TensorBoard
anyway) and change nothing else; the search itself is KerasTuner's.
"""

import keras
import keras_tuner


class _TensorBoardOnlyWhenUsed:
    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        if any(isinstance(c, keras.callbacks.TensorBoard) for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)


class RandomSearch(_TensorBoardOnlyWhenUsed, keras_tuner.RandomSearch):
    """`keras_tuner.RandomSearch`, importing TensorBoard only when it is used."""


class GridSearch(_TensorBoardOnlyWhenUsed, keras_tuner.GridSearch):
    """`keras_tuner.GridSearch`, importing TensorBoard only when it is used."""
