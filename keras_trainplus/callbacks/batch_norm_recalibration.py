"""Re-calibration of BatchNormalization moving statistics (after SWA)."""

import keras
import numpy as np

from keras_trainplus import _compat
from keras_trainplus._validation import check_number


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
        model: a Keras model (nested models and layers are searched too).
            Defaults to none (required).
        data: an array of inputs (batched by `batch_size`), or an iterable of
            batches `x` or `(x, y, ...)` such as a `tf.data.Dataset`. Defaults to
            none (required).
        steps: number of batches to use, or `None` for all. Defaults to `None`.
        batch_size: batch size when `data` is an array. Defaults to 32.

    Returns:
        The number of batches used.
    """
    if steps is not None:
        steps = check_number("steps", steps, low=1, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    layers = batch_norm_layers(model)
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
                totals[i] = (
                    stats
                    if totals[i] is None
                    else [t + s for t, s in zip(totals[i], stats)]
                )
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


def batch_norm_layers(layer):
    """The BatchNormalization layers of `layer`, in nested models and layers too."""
    return [
        sublayer
        for sublayer in _compat.flatten_layers(layer)
        if isinstance(sublayer, keras.layers.BatchNormalization)
    ]


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
