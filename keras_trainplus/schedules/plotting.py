"""`plot`: a picture of a learning-rate schedule (needs matplotlib)."""

import numpy as np
from keras import ops


def plot(schedule, steps, ax=None):
    """Plots the learning rate of `schedule` over training steps.

    The schedule is evaluated once on the whole vector of steps (every schedule of
    `keras_trainplus.schedules` is elementwise). matplotlib is an optional
    dependency: `pip install "keras_trainplus[plot]"`.

    Args:
        schedule: a `LearningRateSchedule` (or any callable of the step).
            Defaults to none (required).
        steps: an integer `n` (plots steps `0 .. n - 1`) or a 1-D sequence of
            steps. Defaults to none (required).
        ax: the matplotlib `Axes` to draw into. Defaults to `None` (the current
            axes, `matplotlib.pyplot.gca()`).

    Returns:
        The `Axes` drawn into.

    Example:

    ```python
    from keras_trainplus.schedules import CosineDecay, WarmUp, plot
    ax = plot(WarmUp(CosineDecay(0.1, 900), warmup_steps=100), 1000)
    ax.figure.savefig("schedule.png")
    ```
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "keras_trainplus.schedules.plot needs matplotlib, which is not installed. "
            'Install it with `pip install "keras_trainplus[plot]"`.'
        ) from error
    if np.ndim(steps) == 0:
        count = int(steps)
        if count != steps or count < 1:
            raise ValueError(
                "Argument `steps` must be an integer >= 1 or a 1-D sequence of steps. "
                f"Received: steps={steps!r}"
            )
        steps = np.arange(count)
    steps = np.asarray(steps)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(
            "Argument `steps` must be an integer >= 1 or a 1-D sequence of steps. "
            f"Received: steps with shape {steps.shape}"
        )
    rates = ops.convert_to_numpy(schedule(ops.convert_to_tensor(steps)))
    rates = np.broadcast_to(np.asarray(rates, dtype=np.float64), steps.shape)
    if ax is None:
        ax = plt.gca()
    ax.plot(steps, rates, label=type(schedule).__name__)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    return ax
