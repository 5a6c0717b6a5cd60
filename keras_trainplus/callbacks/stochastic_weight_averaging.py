"""Stochastic Weight Averaging, and the BatchNormalization re-calibration it needs."""

import warnings

import keras
import numpy as np

from keras_trainplus._validation import check_number


@keras.saving.register_keras_serializable(package="keras_trainplus")
class StochasticWeightAveraging(keras.callbacks.Callback):
    """Averages the weights visited from `start_epoch` on (SWA).

    Stochastic Weight Averaging (Izmailov et al. 2018, arXiv:1803.05407) keeps a
    running average of the weights reached at the end of each epoch from
    `start_epoch` on, usually with a constant (or cyclic) "SWA learning rate", and
    ends training on that average: a flatter point that generalizes better than the
    last iterate. With `w_n` the trainable weights after the `n`-th averaged epoch,

        w_swa <- w_swa + (w_n - w_swa) / n,

    i.e. `w_swa` is the arithmetic mean of `w_1, ..., w_n` (the paper's update with
    cycle length 1 epoch). The average is kept on the device as tensors and updated
    once per epoch, outside the training step; at the end of training it is written
    into the model's trainable variables.

    Averaged weights invalidate the BatchNormalization moving statistics (they
    belong to none of the averaged models), so when `recalibration_data` is given
    the callback finally runs `recalibrate_batch_norm` over it; otherwise it warns
    if the model has BatchNormalization layers.

    Args:
        start_epoch: first (0-based) epoch whose final weights enter the average,
            an integer >= 0; it must be smaller than the `epochs` of `fit`.
        swa_learning_rate: constant learning rate set on the optimizer from
            `start_epoch` on, or `None` to leave the rate alone. Needs an optimizer
            built with a float learning rate; the original rate is restored when
            training ends. Defaults to `None`.
        recalibration_data: data for the BatchNormalization pass at the end (an
            array of inputs, or an iterable of batches `x` or `(x, y, ...)` such as
            a `tf.data.Dataset`), or `None` to skip it. It is not part of
            `get_config` (data is not configuration). Defaults to `None`.
        recalibration_steps: number of batches of `recalibration_data` to use, or
            `None` for all of it. Defaults to `None`.
        batch_size: batch size when `recalibration_data` is an array. Defaults to 32.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.BatchNormalization(),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> x, y = np.random.rand(64, 4), np.random.rand(64, 1)
    >>> swa = StochasticWeightAveraging(start_epoch=3, swa_learning_rate=0.05,
    ...                                 recalibration_data=x)
    >>> _ = model.fit(x, y, epochs=6, batch_size=16, callbacks=[swa], verbose=0)
    """

    def __init__(
        self,
        start_epoch,
        swa_learning_rate=None,
        recalibration_data=None,
        recalibration_steps=None,
        batch_size=32,
    ):
        super().__init__()
        self.start_epoch = check_number("start_epoch", start_epoch, low=0, integer=True)
        self.swa_learning_rate = (
            None
            if swa_learning_rate is None
            else check_number("swa_learning_rate", swa_learning_rate, low=0.0)
        )
        self.recalibration_data = recalibration_data
        self.recalibration_steps = (
            None
            if recalibration_steps is None
            else check_number("recalibration_steps", recalibration_steps, low=1, integer=True)
        )
        self.batch_size = check_number("batch_size", batch_size, low=1, integer=True)
        self.averaged_epochs = 0
        self._average = None

    def on_train_begin(self, logs=None):
        epochs = self.params.get("epochs")
        if epochs is not None and self.start_epoch >= epochs:
            raise ValueError(
                f"Argument `start_epoch` must be < epochs ({epochs}) so that at least "
                f"one epoch is averaged. Received: start_epoch={self.start_epoch}"
            )
        self.averaged_epochs = 0
        self._average = None
        self._original_learning_rate = None
        if self.swa_learning_rate is not None:
            learning_rate = self.model.optimizer.get_config()["learning_rate"]
            if isinstance(learning_rate, dict):
                raise ValueError(
                    "`swa_learning_rate` needs an optimizer built with a float "
                    "learning rate; this one uses a schedule. Pass "
                    "swa_learning_rate=None or a float rate."
                )
            self._original_learning_rate = float(learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        if self.swa_learning_rate is not None and epoch >= self.start_epoch:
            self.model.optimizer.learning_rate = self.swa_learning_rate

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_epoch:
            return
        weights = [v.value for v in self.model.trainable_variables]
        self.averaged_epochs += 1
        if self._average is None:
            self._average = [keras.ops.copy(w) for w in weights]
        else:
            n = float(self.averaged_epochs)
            self._average = [a + (w - a) / n for a, w in zip(self._average, weights)]

    def on_train_end(self, logs=None):
        model = self.model
        if self._original_learning_rate is not None:
            model.optimizer.learning_rate = self._original_learning_rate
        if self._average is None:
            warnings.warn(
                f"Training ended before start_epoch={self.start_epoch}: no weights "
                "were averaged and the model is left as trained.",
                stacklevel=2,
            )
            return
        for variable, value in zip(model.trainable_variables, self._average):
            variable.assign(value)
        if self.recalibration_data is not None:
            recalibrate_batch_norm(
                model,
                self.recalibration_data,
                steps=self.recalibration_steps,
                batch_size=self.batch_size,
            )
        elif _batch_norm_layers(model):
            warnings.warn(
                "The averaged model has BatchNormalization layers whose moving "
                "statistics no longer match its weights: pass `recalibration_data` "
                "or call `keras_trainplus.callbacks.recalibrate_batch_norm`.",
                stacklevel=2,
            )

    def get_config(self):
        return {
            "start_epoch": self.start_epoch,
            "swa_learning_rate": self.swa_learning_rate,
            "recalibration_steps": self.recalibration_steps,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def recalibrate_batch_norm(model, data, steps=None, batch_size=32):
    """Recomputes the moving statistics of every BatchNormalization layer of `model`.

    After weight averaging (SWA) or any other edit of the weights, the moving mean
    and variance of BatchNormalization layers no longer describe the activations.
    This pass runs the model in training mode over `data`, one batch at a time, and
    sets each layer's moving statistics to the exact average of its batch
    statistics, weighted by batch size:

        moving_mean = sum_b n_b mean_b / sum_b n_b,
        moving_variance = sum_b n_b var_b / sum_b n_b,

    with `mean_b`, `var_b` the batch mean and (biased) variance the layer computes
    in training mode, as Keras uses them in its own moving average. With equal batch
    sizes this is PyTorch's `torch.optim.swa_utils.update_bn` (a cumulative average,
    `momentum=None`), except that Keras's batch variance is the biased one.

    Keras updates the moving statistics as `m <- momentum m + (1 - momentum) s`; an
    exponential average would weight the batches unequally, so the pass sets
    `momentum = 0` (the layer then stores the batch statistics exactly), reads them
    after each batch, averages them in float64 and restores `momentum` at the end.
    The model runs in training mode, so Dropout is active, as in PyTorch. Weights
    other than the moving statistics are not changed.

    Args:
        model: a Keras model (nested models are searched too).
        data: an array of inputs (batched by `batch_size`), or an iterable of
            batches `x` or `(x, y, ...)` such as a `tf.data.Dataset`.
        steps: number of batches to use, or `None` for all. Defaults to `None`.
        batch_size: batch size when `data` is an array. Defaults to 32.

    Returns:
        The number of batches used.
    """
    if steps is not None:
        steps = check_number("steps", steps, low=1, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    layers = _batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    totals = [None] * len(layers)
    count, batches = 0, 0
    try:
        for layer in layers:
            layer.momentum = 0.0
        for x in _batches(data, batch_size):
            if steps is not None and batches >= steps:
                break
            size = int(keras.tree.flatten(x)[0].shape[0])
            model(x, training=True)
            for i, layer in enumerate(layers):
                stats = [
                    size * keras.ops.convert_to_numpy(v).astype(np.float64)
                    for v in (layer.moving_mean, layer.moving_variance)
                ]
                totals[i] = stats if totals[i] is None else [
                    t + s for t, s in zip(totals[i], stats)
                ]
            count += size
            batches += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not batches:
        raise ValueError("Argument `data` yielded no batch to recalibrate on.")
    for layer, (mean, variance) in zip(layers, totals):
        layer.moving_mean.assign((mean / count).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(
            (variance / count).astype(layer.moving_variance.dtype)
        )
    return batches


def _batch_norm_layers(layer):
    found = []
    for sublayer in getattr(layer, "layers", []):
        if isinstance(sublayer, keras.layers.BatchNormalization):
            found.append(sublayer)
        else:
            found.extend(_batch_norm_layers(sublayer))
    return found


def _batches(data, batch_size):
    if isinstance(data, np.ndarray) or keras.ops.is_tensor(data):
        data = keras.ops.convert_to_numpy(data)
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    if hasattr(data, "as_numpy_iterator"):
        data = data.as_numpy_iterator()
    for batch in data:
        yield batch[0] if isinstance(batch, tuple) else batch
