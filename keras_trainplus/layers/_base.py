"""Shared machinery of the image augmentation layers."""

import keras
import numpy as np

from keras_trainplus import _compat
from keras_trainplus import _validation


class BaseAugmentation(_compat.data_layer_class()):
    """Base class of keras_trainplus's image augmentation layers.

    It handles what every image layer must accept: batched `(B, H, W, C)` or
    unbatched `(H, W, C)` input, `uint8` or floating images, `channels_last` or
    `channels_first` (`data_format`), and the `training` flag; and it runs inside
    `tf.data` under every backend and inside compiled models. Outputs are in the
    layer's compute dtype (`dtype`, floatx by default); with an integer `dtype`
    such as `"uint8"` the layer computes in float32 and rounds its outputs to the
    nearest integer, clipped to the dtype's range.

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
        images = self.check_image_size(images)
        images = self.backend.cast(images, self.working_dtype)
        unbatched = rank == 3
        if unbatched:
            images = self.backend.numpy.expand_dims(images, 0)
        if self.data_format == "channels_first":
            images = self.backend.numpy.transpose(images, (0, 2, 3, 1))
        return images, unbatched

    def _from_internal(self, images, unbatched):
        images = self.to_output_dtype(images)
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

    @property
    def working_dtype(self):
        """The floating dtype the layer computes in: its compute dtype, or float32
        when that is an integer dtype (an output dtype such as `"uint8"`)."""
        dtype = self.compute_dtype
        return dtype if keras.backend.is_float_dtype(dtype) else "float32"

    def to_output_dtype(self, images):
        """Casts computed `images` to the compute dtype; an integer dtype (e.g.
        `dtype="uint8"`) gets them rounded to the nearest and clipped to its range."""
        dtype = self.compute_dtype
        if not keras.backend.is_float_dtype(dtype):
            info = np.iinfo(dtype)
            images = self.backend.numpy.round(images)
            images = self.backend.numpy.clip(images, info.min, info.max)
        return self.backend.cast(images, dtype)

    def check_image_size(self, images):
        """Returns `images`, checked to be non-empty when the layer reads pixels."""
        return images

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


class ImageAugmentation(BaseAugmentation):
    """`BaseAugmentation` of the layers that transform images alone.

    Besides images, these layers take Keras's preprocessing dict
    `{"images": ..., "labels": ...}` (what `keras.layers.RandomFlip` and its kin
    take): the images are transformed and the labels returned unchanged, in their
    own dtype. Bounding boxes and segmentation masks are refused rather than passed
    through untransformed. Inside a model (symbolic inputs) the images must have
    rank 4; a layer that moves pixels refuses images without height or width.
    """

    # Whether an image of height or width 0 is refused (layers that read pixels at
    # coordinates cannot read an empty image).
    NEEDS_PIXELS = False

    def __call__(self, inputs, *args, **kwargs):
        name = self.__class__.__name__
        if args:
            raise TypeError(
                f"{name} takes images, or a dict {{'images': ..., 'labels': ...}}, as "
                f"its one input; received {1 + len(args)} positional arguments. On a "
                "`tf.data` dataset of (images, labels) pairs, map the images alone: "
                "`ds.map(lambda x, y: (layer(x), y))`."
            )
        if isinstance(inputs, dict):
            unknown = set(inputs) - {"images", "labels"}
            if "images" not in inputs or unknown:
                raise ValueError(
                    f"{name} takes a dict with the key 'images' and optionally "
                    "'labels' (returned unchanged); it does not transform bounding "
                    f"boxes or segmentation masks. Received keys: {sorted(inputs)}"
                )
            outputs = dict(inputs)
            outputs["images"] = self(inputs["images"], **kwargs)
            return outputs
        if isinstance(inputs, keras.KerasTensor) and len(inputs.shape) == 3:
            raise ValueError(
                f"{name} inside a model needs inputs of rank 4 (batch, height, width, "
                "channels). Received: a symbolic input of shape "
                f"{tuple(inputs.shape)}, which has a batch axis and two others, so "
                "no channels axis. Give the images one (e.g. `keras.Input((height, "
                "width, 1))` for grayscale), or call the layer on single "
                "(height, width, channels) images in a `tf.data` pipeline."
            )
        return super().__call__(inputs, **kwargs)

    def check_image_size(self, images):
        check = self.empty_image_check(images)
        if check is None:
            return images
        import tensorflow as tf

        with tf.control_dependencies([check]):
            return tf.identity(images)

    def empty_image_check(self, images, shape=None):
        """Refuses images of height or width 0 (layers that read pixels).

        Raises when the sizes are known; returns the in-graph check to run when
        they are known only when a TensorFlow graph runs (a `tf.data` map), and
        `None` otherwise (XLA cannot compile a check, and compiled models have
        static sizes). `shape` is the run-time `tf.shape(images)`, if computed.
        """
        if not self.NEEDS_PIXELS:
            return None
        static = tuple(images.shape)
        rows = len(static) - (3 if self.data_format == "channels_last" else 2)
        size = static[rows : rows + 2]
        message = (
            f"{self.__class__.__name__} needs images of height and width >= 1. "
            f"Received: inputs.shape="
        )
        if 0 in size:
            raise ValueError(message + str(static))
        if None not in size or self.backend.name != "tensorflow":
            return None
        if _compat.in_tensorflow_xla_context():
            return None
        import tensorflow as tf

        shape = tf.shape(images) if shape is None else shape
        return tf.debugging.Assert(
            tf.reduce_all(shape[rows : rows + 2] > 0), [message, shape]
        )
