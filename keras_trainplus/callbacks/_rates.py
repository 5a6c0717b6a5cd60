"""How the ensembling callbacks read an optimizer's learning rate."""


def learning_rate_config(optimizer):
    """The optimizer's learning rate as in its config: a float or a schedule's dict.

    Wrappers that hold the rate in an inner optimizer (`LossScaleOptimizer`, used
    under mixed precision) are looked through.
    """
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer.get_config()["learning_rate"]
