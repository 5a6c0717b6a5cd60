"""AlexNet's PCA colour augmentation ("lighting" noise)."""

import keras
import numpy as np

from keras_trainplus import _validation
from keras_trainplus.layers._base import ImageAugmentation

# Principal components of ImageNet RGB pixels scaled to [0, 1], as published with
# fb.resnet.torch (datasets/imagenet.lua) and used by torchvision/GluonCV recipes;
# GluonCV writes the same eigenvalues for [0, 255] pixels (55.46, 4.794, 1.148).
# Column `i` of `IMAGENET_EIGENVECTORS` is the eigenvector of `IMAGENET_EIGENVALUES[i]`.
IMAGENET_EIGENVALUES = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class PCALighting(ImageAugmentation):
    """Adds AlexNet's PCA colour noise: a random shift along the RGB principal axes.

    Each image gets one RGB offset, the same for all its pixels:

    ```
    x' = x + (high - low) * V @ (alpha * lambda),    alpha ~ N(0, std^2 I_3)
    ```

    where `V` (3 x 3, eigenvectors as columns) and `lambda` (3,) are the eigenvectors
    and eigenvalues of the covariance of the training set's RGB pixels, and `alpha`
    is drawn once per image. `V` and `lambda` describe pixels scaled to `[0, 1]`:
    the offset is computed on that scale and multiplied by the width of
    `value_range`, so `uint8` or `[0, 255]` images get the same relative change as
    `[0, 1]` images. Outputs are not clipped (as in AlexNet and fb.resnet.torch the
    shift is a few intensity levels; clip or cast afterwards if needed).

    The defaults are the ImageNet values published with fb.resnet.torch (for `[0, 1]`
    pixels). `adapt()` replaces them by the eigen-decomposition of the covariance of
    your own images, as Keras preprocessing layers learn statistics; the adapted
    values are part of `get_config()`, so a saved model keeps them.

    Reference: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
    Convolutional Neural Networks", NeurIPS 2012 (section 4.1).

    Args:
        std: standard deviation of the per-image coefficients `alpha`, `>= 0`
            (`0` makes the layer the identity). Defaults to `0.1` (AlexNet).
        eigenvalues: the 3 eigenvalues `lambda`, each `>= 0`, for pixels in
            `[0, 1]`. Defaults to `None`: the ImageNet values
            `(0.2175, 0.0188, 0.0045)`.
        eigenvectors: 3 x 3 nested list whose column `i` is the unit eigenvector of
            `eigenvalues[i]` (rows are R, G, B). Defaults to `None`: the ImageNet
            eigenvectors.
        value_range: `(low, high)` range of the input pixel values, e.g. `(0, 255)`
            for `uint8` images. Defaults to `(0, 255)`, as Keras's colour layers.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        seed: integer seed of the random draws. Defaults to `None`.
        **kwargs: base layer keyword arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np
    >>> images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), "uint8")
    >>> layer = PCALighting(std=0.1, value_range=(0, 255), seed=1)
    >>> keras.ops.shape(layer(images))
    (4, 32, 32, 3)
    >>> layer.adapt(images)  # eigen-decomposition of these images' RGB covariance
    """

    def __init__(
        self,
        std=0.1,
        eigenvalues=None,
        eigenvectors=None,
        value_range=(0, 255),
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.std = _validation.check_number("std", std, low=0.0)
        self.value_range = _validation.check_range_pair(
            "value_range", value_range, allow_equal=False
        )
        values = IMAGENET_EIGENVALUES if eigenvalues is None else eigenvalues
        vectors = IMAGENET_EIGENVECTORS if eigenvectors is None else eigenvectors
        self._set_components(
            _check_array("eigenvalues", values, (3,)),
            _check_array("eigenvectors", vectors, (3, 3)),
        )

    def _set_components(self, eigenvalues, eigenvectors):
        if np.any(eigenvalues < 0):
            raise ValueError(
                "Argument `eigenvalues` must hold 3 numbers >= 0. "
                f"Received: eigenvalues={eigenvalues.tolist()}"
            )
        self.eigenvalues = [float(v) for v in eigenvalues]
        self.eigenvectors = [[float(v) for v in row] for row in eigenvectors]

    def adapt(self, data):
        """Sets the eigenvalues and eigenvectors from the RGB covariance of `data`.

        The covariance (with the `n - 1` normaliser) of all pixels, scaled to
        `[0, 1]` by `value_range`, is accumulated in float64 and decomposed with
        `numpy.linalg.eigh`; components are sorted by decreasing eigenvalue.

        Args:
            data: images as a NumPy array or tensor (batched or one image), a
                `tf.data.Dataset` or any iterable of image batches. Elements that
                are tuples use their first entry and dicts their `"images"` entry.
        """
        if isinstance(data, np.ndarray) or keras.ops.is_tensor(data):
            data = [data]
        count, total, outer = 0, np.zeros(3), np.zeros((3, 3))
        for batch in data:
            if isinstance(batch, dict):
                batch = batch["images"]
            elif isinstance(batch, (tuple, list)):
                batch = batch[0]
            pixels = self._rgb_pixels(keras.ops.convert_to_numpy(batch))
            count += len(pixels)
            total += pixels.sum(axis=0)
            outer += pixels.T @ pixels
        if count < 2:
            raise ValueError(
                f"PCALighting.adapt() needs at least 2 pixels. Received {count}."
            )
        mean = total / count
        covariance = (outer - count * np.outer(mean, mean)) / (count - 1)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        self._set_components(
            np.clip(eigenvalues[order], 0.0, None), eigenvectors[:, order]
        )

    def _rgb_pixels(self, images):
        images = np.asarray(images, dtype=np.float64)
        if images.ndim not in (3, 4):
            raise ValueError(
                "PCALighting.adapt() expects images of rank 4 (batch, height, width, "
                f"channels) or rank 3. Received: shape={images.shape}"
            )
        axis = -1 if self.data_format == "channels_last" else images.ndim - 3
        _check_channels(images.shape, axis)
        low, high = self.value_range
        return (np.moveaxis(images, axis, -1).reshape(-1, 3) - low) / (high - low)

    def call(self, inputs, training=True):
        shape = tuple(inputs.shape)
        if len(shape) in (3, 4):
            _check_channels(shape, -1 if self.data_format == "channels_last" else -3)
        return super().call(inputs, training=training)

    def get_random_transformation(self, images):
        batch = self.backend.core.shape(images)[0]
        alpha = self.backend.random.normal(
            (batch, 3), stddev=self.std, dtype=self.working_dtype, seed=self._seed()
        )
        return {"alpha": alpha}

    def transform_images(self, images, transformation):
        dtype = self.working_dtype
        low, high = self.value_range
        eigenvalues = self.backend.convert_to_tensor(self.eigenvalues, dtype=dtype)
        eigenvectors = self.backend.convert_to_tensor(self.eigenvectors, dtype=dtype)
        alpha = self.backend.cast(transformation["alpha"], dtype)
        # Row b of (alpha * lambda) @ V^T is V @ (alpha_b * lambda).
        offsets = self.backend.numpy.matmul(
            alpha * eigenvalues, self.backend.numpy.transpose(eigenvectors)
        )
        return images + (high - low) * offsets[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "std": self.std,
                "eigenvalues": self.eigenvalues,
                "eigenvectors": self.eigenvectors,
                "value_range": list(self.value_range),
            }
        )
        return config


def _check_array(name, value, shape):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(
            f"Argument `{name}` must be finite numbers of shape {shape}. "
            f"Received: {name}={value!r}"
        )
    return array


def _check_channels(shape, axis):
    channels = shape[axis]
    if channels is not None and channels != 3:
        raise ValueError(
            "PCALighting needs RGB images with 3 channels. Received: "
            f"inputs.shape={shape}"
        )
