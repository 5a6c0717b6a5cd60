"""How the callbacks read and set an optimizer's learning rate."""

from keras_trainplus.optimizers._common import learning_rate_optimizer


def learning_rate_config(optimizer):
    """The optimizer's learning rate as in its config: a float or a schedule's dict.

    Wrappers (`LossScaleOptimizer`, `LookAhead`, `Ranger`, ...) are looked through
    to the optimizer that holds the rate; a `MultiOptimizer` is refused
    (`ValueError`).
    """
    return learning_rate_optimizer(optimizer).get_config()["learning_rate"]


def set_learning_rate(optimizer, learning_rate):
    """Sets the float learning rate of the optimizer that holds it."""
    learning_rate_optimizer(optimizer).learning_rate = learning_rate
