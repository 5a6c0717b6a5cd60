"""Search spaces for regularization strengths: dropout, Mixup, augmentation."""

from keras_trainplus.tuning._ranges import check_grid_size
from keras_trainplus.tuning._ranges import register_float


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"Argument `name` must be a non-empty string. Received: name={name!r}"
        )
    return name


def dropout_rate(hp, rate=(0.0, 0.5), grid_size=None, name="dropout_rate"):
    """Samples a dropout rate, uniformly in `[0, 0.5]` by default.

    Dropout zeroes each unit with probability `p`, 0.5 being
    the usual choice for fully-connected layers; smaller rates suit convolutional
    layers. Use it as `keras.layers.Dropout(ktp.tuning.dropout_rate(hp))`; give
    each layer its own `name` to search their rates independently.

    Reference: Srivastava et al., "Dropout: A Simple Way to Prevent Neural
    Networks from Overfitting", JMLR 2014.

    Args:
        hp: the `keras_tuner.HyperParameters` of the trial being built.
        rate: a `(min, max)` range in [0, 1) searched uniformly, or a fixed
            number. Defaults to `(0.0, 0.5)`.
        grid_size: `None` for a continuous range, or the number of evenly spaced
            values (ends included) for grid search. Defaults to `None`.
        name: the hyperparameter's name. Defaults to `"dropout_rate"`.

    Returns:
        The rate, a Python float.

    Example:

    ```python
    def build(hp):
        return keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(ktp.tuning.dropout_rate(hp)),
            keras.layers.Dense(10),
        ])
    ```
    """
    return register_float(
        hp,
        _check_name(name),
        rate,
        argument="rate",
        low=0,
        high=1,
        high_inclusive=False,
        grid_size=check_grid_size(grid_size),
    )


def mixup_alpha(hp, alpha=(0.1, 1.0), grid_size=None, name="mixup_alpha"):
    """Samples Mixup's `α`, log-uniformly in `[0.1, 1]` by default.

    Mixup trains on `x = λ xᵢ + (1 − λ) xⱼ`, `y = λ yᵢ + (1 − λ) yⱼ` with
    `λ ~ Beta(α, α)`; the paper uses `α` in [0.1, 0.4] on ImageNet and 1 on
    CIFAR-10, so the range spans a decade and is searched on a log scale. Mixup
    mixes labels too, so it belongs in the input pipeline: sample `α` in the
    `fit` of a `keras_tuner.HyperModel`, which receives the data and `hp`.

    Reference: Zhang et al., "mixup: Beyond Empirical Risk Minimization",
    arXiv:1710.09412.

    Args:
        hp: the `keras_tuner.HyperParameters` of the trial being built.
        alpha: a `(min, max)` range, `min > 0`, searched log-uniformly, or a
            fixed number > 0. Defaults to `(0.1, 1.0)`.
        grid_size: `None` for a continuous range, or the number of geometrically
            spaced values (ends included) for grid search. Defaults to `None`.
        name: the hyperparameter's name. Defaults to `"mixup_alpha"`.

    Returns:
        `α`, a Python float.

    Example:

    ```python
    class MixupHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            ...  # a compiled model with a categorical (soft-label) loss

        def fit(self, hp, model, x, **kwargs):  # x: a batched tf.data.Dataset
            mixup = ktp.layers.Mixup(alpha=ktp.tuning.mixup_alpha(hp), num_classes=10)
            return model.fit(x.map(mixup), **kwargs)

    ktp.tuning.search(MixupHyperModel(), train_ds, val_ds)
    ```
    """
    return register_float(
        hp,
        _check_name(name),
        alpha,
        argument="alpha",
        low=0,
        low_inclusive=False,
        sampling="log",
        grid_size=check_grid_size(grid_size),
    )


def augmentation_strength(
    hp, strength=(0.0, 1.0), grid_size=None, name="augmentation_strength"
):
    """Samples one overall augmentation strength, uniformly in `[0, 1]` by default.

    A single magnitude that scales every augmentation factor of a pipeline, in
    the spirit of RandAugment's one global magnitude: 0 turns augmentation off,
    1 applies the factors as written. Searching one number instead of one per
    layer keeps the search space small (Bergstra & Bengio: only a few
    hyperparameters matter). Multiply each layer's factor by it.

    Reference: Cubuk et al., "RandAugment: Practical automated data augmentation
    with a reduced search space", arXiv:1909.13719.

    Args:
        hp: the `keras_tuner.HyperParameters` of the trial being built.
        strength: a `(min, max)` range, `min >= 0`, searched uniformly, or a fixed
            number >= 0. Defaults to `(0.0, 1.0)`.
        grid_size: `None` for a continuous range, or the number of evenly spaced
            values (ends included) for grid search. Defaults to `None`.
        name: the hyperparameter's name. Defaults to `"augmentation_strength"`.

    Returns:
        The strength, a Python float.

    Example:

    ```python
    def build(hp):
        s = ktp.tuning.augmentation_strength(hp)
        augment = keras.Sequential([
            keras.layers.RandomRotation(0.1 * s),
            keras.layers.RandomTranslation(0.1 * s, 0.1 * s),
        ])
        ...
    ```
    """
    return register_float(
        hp,
        _check_name(name),
        strength,
        argument="strength",
        low=0,
        grid_size=check_grid_size(grid_size),
    )
