"""Ranger: RAdam inside LookAhead, with gradient centralization."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.optimizers import _common
from keras_trainplus.optimizers.lookahead import LookAhead
from keras_trainplus.optimizers.radam import RAdam


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class Ranger(LookAhead):
    """RAdam + LookAhead + gradient centralization, as the original Ranger release.

    Ranger (Wright 2019, github.com/lessw2020/Ranger-Deep-Learning-Optimizer)
    combines `RAdam` (Liu et al. 2019, arXiv:1908.03265) as the fast optimizer,
    `LookAhead` (Zhang et al. 2019, arXiv:1907.08610) around it, and gradient
    centralization (Yong et al. 2020, arXiv:2004.01461): before the RAdam step,
    each gradient of rank > 1 (rank > 3 with `gc_conv_only=True`, i.e. only
    convolution kernels) loses its mean over all axes but the last, the output
    axis in Keras's kernel layouts:

    ```
    g <- g - mean(g, axis=all but last)
    m, v, x <- RAdam step with g           (see `RAdam`)
    every sync_period-th step: phi <- phi + slow_step_size (x - phi); x <- phi
    ```

    `Ranger(use_gc=False, ...)` is exactly `LookAhead(RAdam(...), sync_period,
    slow_step_size)`; the conventions of both apply (epsilon added to `sqrt(v)`
    with the bias corrections in the step size, slow weights initialised when
    the optimizer is built, the model holding the fast weights after training,
    `swap_slow_weights()` to put the slow ones in). State: three slots per
    parameter (`m`, `v`, slow weights). Keras's base arguments apply around the
    RAdam step (gradient clipping before centralization, decoupled weight decay
    with Ranger's learning rate). Sparse gradients (an `Embedding`'s: TensorFlow
    `IndexedSlices`, JAX `BCOO`) are centralized exactly, hence made dense: every
    row of the variable then moves, as with a dense gradient. `gc_conv_only=True`
    or `use_gc=False` keeps them sparse.

    Args:
        learning_rate: A float >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable without
            arguments returning the learning rate. Defaults to `0.001`.
        beta_1: Float in `[0, 1)`. Defaults to `0.95`.
        beta_2: Float in `[0, 1)`. Defaults to `0.999`.
        epsilon: Float >= 0 added to `sqrt(v)`. Defaults to `1e-5`.
        sma_threshold: Float >= 4, RAdam's rectification threshold. Defaults to
            `5.0`.
        sync_period: Integer >= 1, LookAhead's `k`. Defaults to `6`.
        slow_step_size: Float in `[0, 1]`, LookAhead's `alpha`. Defaults to `0.5`.
        use_gc: Boolean, whether to centralize gradients. Defaults to `True`.
        gc_conv_only: Boolean, centralize only gradients of rank > 3 (convolution
            kernels) instead of rank > 1. Defaults to `False`.
        {{base_kwargs}}

    Example:

    >>> import keras, keras_trainplus as ktp
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=ktp.optimizers.Ranger(1e-3), loss="mse")
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.95,
        beta_2=0.999,
        epsilon=1e-5,
        sma_threshold=5.0,
        sync_period=6,
        slow_step_size=0.5,
        use_gc=True,
        gc_conv_only=False,
        **kwargs,
    ):
        _validation.check_bool("use_gc", use_gc)
        _validation.check_bool("gc_conv_only", gc_conv_only)
        radam = RAdam(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            sma_threshold=sma_threshold,
        )
        super().__init__(radam, sync_period, slow_step_size, **kwargs)
        self.use_gc = use_gc
        self.gc_conv_only = gc_conv_only

    def update_all(self, grads, trainable_variables):
        grads = [self._centralize(g, v) for g, v in zip(grads, trainable_variables)]
        super().update_all(grads, trainable_variables)

    def _centralize(self, gradient, variable):
        rank = len(variable.shape)
        if not self.use_gc or rank <= (3 if self.gc_conv_only else 1):
            return gradient
        # The centralized gradient of a sparse one (an `Embedding`'s) is dense: the
        # mean is subtracted from every row, those without gradient included.
        gradient = _common.dense_gradient(gradient, variable)
        axes = tuple(range(rank - 1))
        return ops.subtract(gradient, ops.mean(gradient, axis=axes, keepdims=True))

    def get_config(self):
        config = super().get_config()
        config.pop("optimizer")
        radam_config = self.optimizer.get_config()
        for key in ("learning_rate", "beta_1", "beta_2", "epsilon", "sma_threshold"):
            config[key] = radam_config[key]
        config.update({"use_gc": self.use_gc, "gc_conv_only": self.gc_conv_only})
        return config


if Ranger.__doc__ is not None:
    Ranger.__doc__ = Ranger.__doc__.replace("{{base_kwargs}}", _common.BASE_KWARGS_DOC)
