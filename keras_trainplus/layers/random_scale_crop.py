"""RandomScaleCrop: the ResNet scale augmentation (random short side, random crop)."""

import keras

from keras_trainplus import _validation
from keras_trainplus.layers import _sampling
from keras_trainplus.layers._crop import CropAugmentation


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class RandomScaleCrop(CropAugmentation):
    """Resize the short side to a random `L`, then take a random `height x width` crop.

    The scale augmentation of VGG and ResNet (Simonyan & Zisserman, 2015; He et al.,
    2016, "Deep residual learning for image recognition"): `L` is an integer drawn
    uniformly from `short_side_range` (inclusive), the image is scaled by
    `L / min(H, W)` (the long side rounded to whole pixels, as torchvision's
    `Resize(L)`), and a crop is taken at a uniformly drawn integer offset. Resize and
    crop are one resample: each output pixel reads the input once (bilinear with
    half-pixel centres and no antialiasing, as `tf.image.resize(antialias=False)`).

    At inference (`training=False`) the short side is resized to
    `short_side_range[0]` and the centre `height x width` crop is returned (the
    single-crop evaluation of ResNet, e.g. 256 then 224).

    Input images may have any size, including different sizes per element of a
    `tf.data` pipeline mapped before batching. The layer also takes one encoded
    image file, a scalar string such as `tf.io.read_file(path)` (in `tf.data` under
    any backend, or eagerly): a JPEG is then decoded only inside the window the
    crop reads (the scaled crop mapped back to the file's pixels), other formats
    whole, and the crops are those of the decoded image.

    Args:
        height: crop height in pixels, an integer >= 1.
        width: crop width in pixels, an integer >= 1.
        short_side_range: `(min, max)` integers for `L`, with
            `min >= max(height, width)` so that the crop fits. Defaults to
            `(256, 480)`.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `data_format`, `name`, `dtype` (`"uint8"` rounds the outputs
            to integers).

    Example:

    >>> layer = RandomScaleCrop(224, 224, seed=0)
    >>> layer(np.zeros((2, 300, 400, 3))).shape
    (2, 224, 224, 3)
    """

    def __init__(
        self,
        height,
        width,
        short_side_range=(256, 480),
        interpolation="bilinear",
        seed=None,
        **kwargs,
    ):
        super().__init__(
            height, width, interpolation=interpolation, seed=seed, **kwargs
        )
        side = max(self.height, self.width)
        low, high = _validation.check_range_pair("short_side_range", short_side_range)
        if low < side or not (low.is_integer() and high.is_integer()):
            raise ValueError(
                "Argument `short_side_range` must be a (min, max) pair of integers "
                f"with max(height, width)={side} <= min <= max. "
                f"Received: short_side_range={short_side_range!r}"
            )
        self.short_side_range = (int(low), int(high))

    def draws_for(self, batch):
        """Per sample: the short side, the top and the left offset."""
        return self.backend.random.uniform((batch, 3), seed=self._seed())

    def parameters_from_draws(self, draws, height, width):
        np_ = self.backend.numpy
        low, high = self.short_side_range
        short_side = np_.minimum(np_.floor(low + draws[:, 0] * (high - low + 1)), high)
        scaled_h, scaled_w = self._scaled_size(short_side, height, width)
        top = np_.floor(draws[:, 1] * (scaled_h - self.height + 1.0))
        left = np_.floor(draws[:, 2] * (scaled_w - self.width + 1.0))
        return {"short_side": short_side, "offsets": np_.stack([top, left], axis=-1)}

    def _scaled_size(self, short_side, height, width):
        np_ = self.backend.numpy
        height = self.backend.cast(height, "float32")
        width = self.backend.cast(width, "float32")
        factor = short_side / np_.minimum(height, width)
        return np_.round(height * factor), np_.round(width * factor)

    def input_boxes(self, transformation, height, width):
        """The `(top, left, h, w)` box of the input that each crop came from."""
        np_ = self.backend.numpy
        short_side = self.backend.cast(transformation["short_side"], "float32")
        offsets = self.backend.cast(transformation["offsets"], "float32")
        scaled_h, scaled_w = self._scaled_size(short_side, height, width)
        height = self.backend.cast(height, "float32")
        width = self.backend.cast(width, "float32")
        return np_.stack(
            [
                offsets[:, 0] * height / scaled_h,
                offsets[:, 1] * width / scaled_w,
                self.height * height / scaled_h,
                self.width * width / scaled_w,
            ],
            axis=-1,
        )

    def source_coordinates(self, ys, xs, transformation, height, width):
        boxes = self.input_boxes(transformation, height, width)
        ys, xs = _sampling.crop_coordinates(
            self.backend, ys, xs, boxes, self.height, self.width
        )
        return ys, xs, None

    def source_axes(self, transformation, height, width):
        boxes = self.input_boxes(transformation, height, width)
        return _sampling.crop_axes(self.backend, boxes, self.height, self.width)

    def inference_parameters(self, batch, height, width):
        """The centre crop of the image scaled to the smallest short side."""
        np_ = self.backend.numpy
        short_side = np_.full((batch,), self.short_side_range[0], "float32")
        scaled_h, scaled_w = self._scaled_size(short_side, height, width)
        offsets = np_.stack(
            [
                np_.floor((scaled_h - self.height) / 2.0),
                np_.floor((scaled_w - self.width) / 2.0),
            ],
            axis=-1,
        )
        return {"short_side": short_side, "offsets": offsets}

    def get_config(self):
        config = super().get_config()
        config["short_side_range"] = self.short_side_range
        return config
