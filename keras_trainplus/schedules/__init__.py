"""keras_trainplus.schedules: learning-rate schedules for any Keras optimizer.

Every schedule is a `keras.optimizers.schedules.LearningRateSchedule` written with
`keras.ops` on the step, so it runs in-graph (XLA included) on every backend, and is
registered under the package `keras_trainplus` for `model.save()`.
"""

from keras_trainplus.schedules.cosine_decay import CosineDecay
from keras_trainplus.schedules.cyclic_cosine_decay import CyclicCosineDecay
from keras_trainplus.schedules.inverse_sqrt_decay import InverseSqrtDecay
from keras_trainplus.schedules.linear_decay import LinearDecay
from keras_trainplus.schedules.one_cycle import OneCycle
from keras_trainplus.schedules.plotting import plot
from keras_trainplus.schedules.step_decay import StepDecay
from keras_trainplus.schedules.warm_up import WarmUp

__all__ = [
    "CosineDecay",
    "CyclicCosineDecay",
    "InverseSqrtDecay",
    "LinearDecay",
    "OneCycle",
    "StepDecay",
    "WarmUp",
    "plot",
]
