"""Search space over learning-rate schedules: step, cosine with warm-up, one-cycle."""

from keras_trainplus import schedules
from keras_trainplus._validation import check_number
from keras_trainplus.tuning._ranges import check_choices
from keras_trainplus.tuning._ranges import check_grid_size
from keras_trainplus.tuning._ranges import check_range
from keras_trainplus.tuning._ranges import register_choice
from keras_trainplus.tuning._ranges import register_float
from keras_trainplus.tuning._ranges import register_learning_rate

KINDS = ("step", "cosine", "one_cycle")


def _check_boundaries(boundaries):
    message = (
        "Argument `step_boundaries` must be a non-empty increasing sequence of "
        f"fractions in (0, 1). Received: step_boundaries={boundaries!r}"
    )
    try:
        fractions = [float(b) for b in boundaries]
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not fractions or any(not 0 < f < 1 for f in fractions):
        raise ValueError(message)
    if any(b <= a for a, b in zip(fractions, fractions[1:])):
        raise ValueError(message)
    return fractions


def learning_rate_schedule(
    hp,
    total_steps,
    kinds=KINDS,
    learning_rate=(1e-4, 1e-1),
    warmup_fraction=(0.0, 0.1),
    step_boundaries=(0.5, 0.75),
    step_decay_rate=0.1,
    pct_start=0.25,
    grid_size=None,
):
    """Samples a learning-rate schedule kind and its hyperparameters, and builds it.

    The usual recipe: start with a large learning rate and decay it over time,
    often after a short linear warm-up (Goyal et al. 2017). The hyperparameters
    registered in `hp` are

    | name | range (defaults) | sampling | active when |
    |---|---|---|---|
    | `schedule` | `kinds` | choice | always |
    | `learning_rate` | [1e-4, 1e-1] | log-uniform | always (peak rate) |
    | `step_decay_rate` | fixed 0.1 | log-uniform if a range | `schedule == "step"` |
    | `warmup_fraction` | [0, 0.1] | uniform | `schedule == "cosine"` |
    | `pct_start` | fixed 0.25 | uniform if a range | `schedule == "one_cycle"` |

    The schedules, all over `total_steps` optimizer steps (epochs times steps per
    epoch) and all peaking at `learning_rate`:

    - `"step"`: `keras_trainplus.schedules.StepDecay`, multiplied by
      `step_decay_rate` at each of `step_boundaries` (fractions of training,
      rounded to steps, a step reached twice counted once; ResNet's ×0.1 at
      epochs 30 and 60 of 90 is about `(0.33, 0.67)`).
    - `"cosine"`: `keras_trainplus.schedules.WarmUp` (linear, from 0, over
      `W = round(warmup_fraction * total_steps)` steps, at most `total_steps - 1`)
      around `keras_trainplus.schedules.CosineDecay` to 0 over the remaining
      `total_steps - W` steps, optax's `warmup_cosine_decay_schedule`.
    - `"one_cycle"`: `keras_trainplus.schedules.OneCycle` with maximum
      `learning_rate`, rising for the first `pct_start` of training.

    Each numeric argument is a `(min, max)` pair to search, or a single number to
    fix (recorded as `hp.Fixed`). Pass the result to `optimizer(hp,
    learning_rate=schedule)` or to any Keras optimizer.

    References: Loshchilov & Hutter, "SGDR", arXiv:1608.03983 (cosine);
    Goyal et al., "Accurate, Large Minibatch SGD", arXiv:1706.02677 (warm-up);
    Smith & Topin, "Super-Convergence", arXiv:1708.07120 (one-cycle).

    Args:
        hp: the `keras_tuner.HyperParameters` of the trial being built.
        total_steps: the number of optimizer steps of the whole training, an
            integer >= 1.
        kinds: the schedules to choose from, a subset of `("step", "cosine",
            "one_cycle")`, or one name to fix it. Defaults to all three.
        learning_rate: the initial (step), peak (cosine) or maximum (one-cycle)
            rate, a `(min, max)` range searched log-uniformly or a fixed number.
            Defaults to `(1e-4, 1e-1)`.
        warmup_fraction: the fraction of `total_steps` spent warming up before the
            cosine decay, in [0, 1): a range searched uniformly or a fixed number.
            Defaults to `(0.0, 0.1)`.
        step_boundaries: the fractions of `total_steps` at which the step schedule
            decays, increasing, in (0, 1). Defaults to `(0.5, 0.75)`.
        step_decay_rate: the step schedule's factor, in (0, 1]: a range searched
            log-uniformly or a fixed number. Defaults to `0.1`.
        pct_start: the fraction of one-cycle training spent rising, in (0, 1): a
            range searched uniformly or a fixed number. Defaults to `0.25`.
        grid_size: `None` for continuous ranges, or the number of values each
            searched range takes under grid search. Defaults to `None`.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`.

    Example:

    ```python
    def build(hp):
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
        schedule = ktp.tuning.learning_rate_schedule(hp, total_steps=10 * 50)
        model.compile(
            optimizer=ktp.tuning.optimizer(hp, learning_rate=schedule),
            loss="sparse_categorical_crossentropy",
        )
        return model
    ```
    """
    total_steps = check_number("total_steps", total_steps, 1, integer=True)
    kinds = check_choices("kinds", kinds, KINDS)
    boundaries = _check_boundaries(step_boundaries)
    grid_size = check_grid_size(grid_size)
    kind = register_choice(hp, "schedule", kinds)
    peak = register_learning_rate(hp, learning_rate, grid_size)
    values = {}
    conditional = (
        ("step", "step_decay_rate", step_decay_rate, dict(sampling="log")),
        ("cosine", "warmup_fraction", warmup_fraction, dict(high_inclusive=False)),
        ("one_cycle", "pct_start", pct_start, dict(high_inclusive=False)),
    )
    for owner, name, value, bounds in conditional:
        bounds.update(low=0, high=1, low_inclusive=name == "warmup_fraction")
        if owner not in kinds:
            check_range(name, value, **bounds)
            continue
        with hp.conditional_scope("schedule", [owner]):
            values[name] = register_float(
                hp, name, value, argument=name, grid_size=grid_size, **bounds
            )

    if kind == "step":
        # Fractions of a short training can round to the same step; a boundary
        # counted twice would decay twice at once, so each step is kept once.
        steps = sorted({max(1, round(f * total_steps)) for f in boundaries})
        return schedules.StepDecay(
            initial_learning_rate=peak,
            boundaries=steps,
            decay_rate=values["step_decay_rate"],
        )
    if kind == "cosine":
        warmup_steps = round(values["warmup_fraction"] * total_steps)
        warmup_steps = min(warmup_steps, total_steps - 1)
        cosine = schedules.CosineDecay(
            initial_learning_rate=peak,
            decay_steps=total_steps - warmup_steps,
            final_learning_rate=0.0,
        )
        return schedules.WarmUp(cosine, warmup_steps=warmup_steps)
    return schedules.OneCycle(
        max_learning_rate=peak, total_steps=total_steps, pct_start=values["pct_start"]
    )
