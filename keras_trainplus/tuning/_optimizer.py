"""Search space over optimizer families, learning rate and weight decay."""

import keras

from keras_trainplus import optimizers
from keras_trainplus.tuning._ranges import check_choices
from keras_trainplus.tuning._ranges import check_grid_size
from keras_trainplus.tuning._ranges import check_range
from keras_trainplus.tuning._ranges import register_choice
from keras_trainplus.tuning._ranges import register_float
from keras_trainplus.tuning._ranges import register_learning_rate

FAMILIES = ("adam", "nesterov", "radam", "ranger")


def _check_lookahead(lookahead):
    choices = (lookahead,) if isinstance(lookahead, bool) else tuple(lookahead)
    if not choices or any(not isinstance(c, bool) for c in choices):
        raise ValueError(
            "Argument `lookahead` must be True, False or (False, True). "
            f"Received: lookahead={lookahead!r}"
        )
    return tuple(sorted(set(choices)))


def optimizer(
    hp,
    families=FAMILIES,
    learning_rate=(1e-4, 1e-1),
    weight_decay=(1e-6, 1e-2),
    momentum=(0.8, 0.99),
    lookahead=(False, True),
    grid_size=None,
):
    """Samples an optimizer family and its hyperparameters, and builds the optimizer.

    Learning rates and weight decay are searched on a log scale (Bergstra &
    Bengio 2012, "Random Search for Hyper-Parameter Optimization"). The
    hyperparameters registered in `hp` are

    | name | range (defaults) | sampling | active when |
    |---|---|---|---|
    | `optimizer` | `families` | choice | always |
    | `learning_rate` | [1e-4, 1e-1] | log-uniform | `learning_rate` is not a schedule |
    | `weight_decay` | [1e-6, 1e-2] | log-uniform | always |
    | `momentum` | [0.8, 0.99] | uniform | `optimizer == "nesterov"` |
    | `lookahead` | {False, True} | choice | `optimizer != "ranger"` |

    Families: `"adam"` is `keras.optimizers.Adam`; `"nesterov"` is
    `keras_trainplus.optimizers.Nesterov` (SGD with Nesterov momentum); `"radam"`
    is `keras_trainplus.optimizers.RAdam`; `"ranger"` is
    `keras_trainplus.optimizers.Ranger` (RAdam + LookAhead already, so `lookahead`
    does not apply to it). With `lookahead` true the optimizer is wrapped in
    `keras_trainplus.optimizers.LookAhead` with the paper's defaults
    (`sync_period=5, slow_step_size=0.5`). Weight decay is Keras's decoupled
    `weight_decay` (`x ← x − α λ x` each step, as in AdamW), given to the
    inner optimizer.

    Each numeric argument is a `(min, max)` pair to search, or a single number to
    fix (recorded as `hp.Fixed`); a fixed `weight_decay` of 0 turns decay off.
    The names are plain (`"learning_rate"`, ...): to use the helper twice in one
    model, call it inside `with hp.name_scope("..."):`. A name already registered
    keeps its first definition, so `learning_rate_schedule(hp, ...)` and
    `optimizer(hp, ...)` share `learning_rate` when both search it.

    Reference: Bergstra & Bengio, "Random Search for Hyper-Parameter
    Optimization", JMLR 2012.

    Args:
        hp: the `keras_tuner.HyperParameters` of the trial being built.
        families: the families to choose from, a subset of `("adam", "nesterov",
            "radam", "ranger")`, or one name to fix it. Defaults to all four.
        learning_rate: a `(min, max)` range searched log-uniformly, a fixed
            number, or a `keras.optimizers.schedules.LearningRateSchedule` (e.g.
            from `learning_rate_schedule`) used as is. Defaults to `(1e-4, 1e-1)`.
        weight_decay: a `(min, max)` range searched log-uniformly, or a fixed
            number (0 for none). Defaults to `(1e-6, 1e-2)`.
        momentum: the Nesterov momentum `ρ`, a `(min, max)` range searched
            uniformly in [0, 1), or a fixed number. Defaults to `(0.8, 0.99)`.
        lookahead: whether to wrap in LookAhead: `(False, True)` searches it,
            `True` or `False` fixes it. Defaults to `(False, True)`.
        grid_size: `None` for continuous ranges, or the number of values each
            searched range takes (spaced on its scale, ends included), which is
            what `keras_tuner.GridSearch` then enumerates. Defaults to `None`.

    Returns:
        A built, uncompiled `keras.optimizers.Optimizer`.

    Example:

    ```python
    def build(hp):
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
        model.compile(
            optimizer=ktp.tuning.optimizer(hp, families=("adam", "radam")),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model
    ```
    """
    families = check_choices("families", families, FAMILIES)
    lookahead = _check_lookahead(lookahead)
    grid_size = check_grid_size(grid_size)
    family = register_choice(hp, "optimizer", families)

    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = learning_rate
    else:
        rate = register_learning_rate(hp, learning_rate, grid_size)
    decay = register_float(
        hp,
        "weight_decay",
        weight_decay,
        argument="weight_decay",
        low=0,
        sampling="log",
        grid_size=grid_size,
    )
    decay = decay or None

    rho = None
    momentum_bounds = dict(low=0, high=1, high_inclusive=False)
    if "nesterov" in families:
        with hp.conditional_scope("optimizer", ["nesterov"]):
            rho = register_float(
                hp,
                "momentum",
                momentum,
                argument="momentum",
                grid_size=grid_size,
                **momentum_bounds,
            )
    else:
        check_range("momentum", momentum, **momentum_bounds)
    wrap = False
    wrappable = [f for f in families if f != "ranger"]
    if wrappable:
        with hp.conditional_scope("optimizer", wrappable):
            if len(lookahead) == 1:
                wrap = hp.Fixed("lookahead", lookahead[0])
            else:
                wrap = hp.Boolean("lookahead")

    if family == "adam":
        built = keras.optimizers.Adam(learning_rate=rate, weight_decay=decay)
    elif family == "nesterov":
        built = optimizers.Nesterov(
            learning_rate=rate, momentum=rho, weight_decay=decay
        )
    elif family == "radam":
        built = optimizers.RAdam(learning_rate=rate, weight_decay=decay)
    else:
        return optimizers.Ranger(learning_rate=rate, weight_decay=decay)
    if wrap:
        return optimizers.LookAhead(built, sync_period=5, slow_step_size=0.5)
    return built
