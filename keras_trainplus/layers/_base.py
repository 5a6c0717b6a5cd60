"""Shared machinery of the image augmentation layers."""

import keras

from keras_trainplus import _compat
from keras_trainplus import _validation


class BaseAugmentation(_compat.data_layer_class()):
    """Base class of keras_trainplus's image augmentation layers.

    It handles what every image layer must accept: batched `(B, H, W, C)` or
    unbatched `(H, W, C)` input, `uint8` or floating images, `channels_last` or
    `channels_first` (`data_format`), and the `training` flag; and it runs inside
    `tf.data` under every backend and inside compiled models.

    Subclasses implement, on a `channels_last` batch in the layer's compute dtype:
    - `get_random_transformation(images)`: every random draw of the layer, in one
      place, with `self.backend.random` and the seed from `self._seed()`; returns a
      dict of tensors (one entry per sample);
    - `transform_images(images, transformation)`: deterministic given the
      transformation, so tests can pass one in;
    - `transform_inference(images)`: the output when `training=False`; identity by
      default.

    Args:
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        seed: integer seed of the layer's `keras.random.SeedGenerator`. Defaults to
            `None` (non-deterministic).
        **kwargs: base layer keyword arguments (`name`, `dtype`).
    """

    def __init__(self, data_format=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _validation.check_choice(
            "data_format",
            data_format or keras.config.image_data_format(),
            ("channels_last", "channels_first"),
        )
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def _seed(self):
        """The seed generator for the backend this call computes with."""
        return self._get_seed_generator(self.backend.name)

    def _to_internal(self, images):
        """Returns `(batch, unbatched)`: a channels_last batch in the compute dtype."""
        images = self.backend.convert_to_tensor(images)
        rank = len(images.shape)
        if rank not in (3, 4):
            raise ValueError(
                f"{self.__class__.__name__} expects images of rank 4 (batch, height, "
                f"width, channels) or rank 3 (height, width, channels). Received: "
                f"inputs.shape={tuple(images.shape)}"
            )
        images = self.backend.cast(images, self.compute_dtype)
        unbatched = rank == 3
        if unbatched:
            images = self.backend.numpy.expand_dims(images, 0)
        if self.data_format == "channels_first":
            images = self.backend.numpy.transpose(images, (0, 2, 3, 1))
        return images, unbatched

    def _from_internal(self, images, unbatched):
        if self.data_format == "channels_first":
            images = self.backend.numpy.transpose(images, (0, 3, 1, 2))
        if unbatched:
            images = self.backend.numpy.squeeze(images, 0)
        return images

    def call(self, inputs, training=True):
        images, unbatched = self._to_internal(inputs)
        if training:
            transformation = self.get_random_transformation(images)
            images = self.transform_images(images, transformation)
        else:
            images = self.transform_inference(images)
        return self._from_internal(images, unbatched)

    def get_random_transformation(self, images):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement get_random_transformation()"
        )

    def transform_images(self, images, transformation):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement transform_images()"
        )

    def transform_inference(self, images):
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "seed": self.seed})
        return config
