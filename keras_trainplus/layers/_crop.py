"""The base class of the crop layers, and their path from encoded image bytes."""

import sys

import keras

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.layers import _sampling
from keras_trainplus.layers._geometric import GeometricAugmentation

# What `tf.io.decode_image` reads besides JPEG, by their first bytes.
OTHER_FORMATS = {
    "PNG": b"\x89PNG",
    "GIF": b"GIF8",
    "BMP": b"BM",
    "WebP": b"RIFF",
}


class CropAugmentation(GeometricAugmentation):
    """A crop of the input resized to `(height, width)`: an axis-aligned map.

    Subclasses implement `parameters_from_draws(draws, height, width)` for the
    uniform draws of `draws_for(batch)`, `inference_parameters(batch, height, width)`
    for `training=False`, and `source_axes` (the input rows and columns that each
    output row and column reads, inside the image).

    Besides images, a crop layer takes one encoded image (a scalar string tensor,
    e.g. `tf.io.read_file(path)`, or Python `bytes`) and decodes it itself, with
    TensorFlow whatever the Keras backend (in `tf.data`, or eagerly). A JPEG is
    decoded only inside the window that the crop reads, found from the image size
    in its header; other formats are decoded whole first. The draws, the window
    and the result are those of the same layer called on the decoded image.

    Args:
        height: output height in pixels, an integer >= 1.
        width: output width in pixels, an integer >= 1.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        **kwargs: `ImageAugmentation` arguments (`data_format`, `seed`, `name`, ...).
    """

    # Reads stay inside the image: the fill mode only clamps rounding at the border.
    FILL_ARGUMENTS = False

    def __init__(self, height, width, interpolation="bilinear", **kwargs):
        super().__init__(interpolation=interpolation, fill_mode="nearest", **kwargs)
        self.height = _validation.check_number("height", height, 1, integer=True)
        self.width = _validation.check_number("width", width, 1, integer=True)

    def output_size(self, height, width):
        return self.height, self.width

    def random_parameters(self, batch, height, width):
        return self.parameters_from_draws(self.draws_for(batch), height, width)

    def draws_for(self, batch):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement draws_for()"
        )

    def parameters_from_draws(self, draws, height, width):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement parameters_from_draws()"
        )

    def inference_parameters(self, batch, height, width):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement inference_parameters()"
        )

    def transform_inference(self, images):
        shape = self.backend.core.shape(images)
        transformation = self.inference_parameters(shape[0], shape[1], shape[2])
        return self.transform_images(images, transformation)

    def __call__(self, inputs, *args, **kwargs):
        if not args and is_encoded(inputs):
            return self._call_encoded(inputs, **kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def _call_encoded(self, contents, training=True):
        import tensorflow as tf

        name = self.__class__.__name__
        if isinstance(contents, keras.KerasTensor):
            raise ValueError(
                f"{name} decodes encoded images in a `tf.data` pipeline or eagerly, "
                "not inside a model: map it over the file contents before `batch()`."
            )
        contents = tf.convert_to_tensor(contents, tf.string)
        if contents.shape.rank not in (0, None):
            raise ValueError(
                f"{name} decodes one encoded image at a time (a scalar string): map "
                "it over the dataset before `batch()`. Received: inputs.shape="
                f"{tuple(contents.shape)}"
            )
        training = True if training is None else training
        eager = tf.executing_eagerly()
        with _compat.computing_with([self], "tensorflow"), tf.name_scope(name):
            if contents.shape.rank is None:
                contents = tf.reshape(contents, [])
            try:
                out = self._crop_encoded(contents, training)
            except tf.errors.InvalidArgumentError as error:
                if not eager:
                    raise
                raise tf.errors.InvalidArgumentError(
                    None, None, f"{name} could not decode its input: {error.message}"
                ) from None
            out = self.to_output_dtype(out)
        if self.data_format == "channels_first":
            out = tf.transpose(out, (2, 0, 1))
        if eager and keras.backend.backend() != "tensorflow":
            out = keras.ops.convert_to_tensor(out.numpy())
        return out

    def _crop_encoded(self, contents, training):
        """The output for one scalar string, computed with TensorFlow."""
        draws = self.draws_for(1) if training else None
        pixels, plan = decode_window(
            contents,
            lambda height, width: self.window_plan(draws, height, width),
            self.__class__.__name__,
        )
        return self.read_window(pixels, plan)

    def window_plan(self, draws, height, width):
        """What the crop of an image of `(height, width)` reads: `(slices, plan)`.

        `slices` are `widened_window`'s, for the int32 `(top, left, rows, cols)`
        window of the input that holds every pixel the crop reads; `plan` is what
        `read_window` needs besides the window's pixels (here, the read coordinates
        and the window). `draws` are those of `draws_for(1)`, or `None` for the
        inference crop.
        """
        if draws is None:
            transformation = self.inference_parameters(1, height, width)
        else:
            transformation = self.parameters_from_draws(draws, height, width)
        ys, xs = self.source_axes(transformation, height, width)
        window = _sampling.read_window(self.backend, ys, xs, height, width)
        return widened_window(self.backend, window, width), (window, ys, xs)

    def read_window(self, pixels, plan):
        """The `(height, width, channels)` crop from the window's `pixels`."""
        backend = self.backend
        window, ys, xs = plan
        window = backend.cast(window, "float32")
        out = _sampling.sample_separable(
            backend,
            backend.cast(pixels[None], "float32"),
            ys - window[0],
            xs - window[1],
            self.interpolation,
            self.fill_mode,
            self.fill_value,
        )
        return out[0]

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width})
        return config


def is_encoded(inputs):
    """Whether `inputs` is encoded image data: `bytes` or a string tensor."""
    if isinstance(inputs, bytes):
        return True
    if isinstance(inputs, keras.KerasTensor):
        return inputs.dtype == "string"
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return isinstance(inputs, tf.Tensor) and inputs.dtype == tf.string


def widened_window(backend, window, image_width):
    """How to decode a `(top, left, rows, cols)` window of a JPEG exactly.

    libjpeg decodes a window's outermost columns without their outer neighbours:
    with horizontally subsampled colour (4:2:0, 4:2:2, the usual JPEG) the chroma
    upsampling of the window's first and last column then differs from a full
    decode (by up to ~30 levels, measured). A window one column wider on each side
    (where the image has one) puts those columns outside the crop, and its slice
    equals the full decode's exactly, for every subsampling, progressive or not.

    Returns:
        int32 `(decode, begin, size)`: the window to decode, then the `tf.slice`
        begin and size (3 channels) that cut the requested window out of it.
    """
    np_ = backend.numpy
    window = backend.cast(window, "int32")
    top, left, rows, cols = window[0], window[1], window[2], window[3]
    first = np_.maximum(left - 1, 0)
    wider = np_.minimum(left + cols + 1, backend.cast(image_width, "int32")) - first
    zero, three = np_.zeros((), "int32"), np_.full((), 3, "int32")
    decode = np_.stack([top, first, rows, wider])
    return decode, np_.stack([zero, left - first, zero]), np_.stack([rows, cols, three])


def decode_window(contents, window_plan, layer_name):
    """Decodes the window of an encoded image that a crop reads.

    Args:
        contents: a scalar string tensor, a JPEG, PNG, GIF, BMP or WebP file.
        window_plan: `window_plan(height, width)` returns `(slices, plan)` for an
            image of that size: `widened_window`'s slices of the window, and any
            nest of tensors the caller needs with it.
        layer_name: named in the error raised for data that is no image.

    Returns:
        `(pixels, plan)`: the window's uint8 RGB pixels `(rows, cols, 3)` and the
        plan. A JPEG's size comes from its header and only the (widened) window is
        decoded (`tf.io.decode_and_crop_jpeg`); the other formats are decoded whole
        (`tf.io.decode_image`, first frame of an animation). Grayscale images come
        out as RGB.
    """
    import tensorflow as tf

    def jpeg():
        size = tf.io.extract_jpeg_shape(contents)
        (decode, begin, cut), plan = window_plan(size[0], size[1])
        pixels = tf.io.decode_and_crop_jpeg(contents, decode, channels=3)
        return tf.slice(pixels, begin, cut), plan

    def other():
        header = tf.strings.substr(contents, 0, 4)
        known = [
            tf.strings.substr(header, 0, len(m)) == m for m in OTHER_FORMATS.values()
        ]
        check = tf.debugging.Assert(
            tf.reduce_any(tf.stack(known)),
            [
                f"{layer_name} expects encoded image data (JPEG, "
                f"{', '.join(OTHER_FORMATS)}), e.g. the contents of an image file "
                "from tf.io.read_file(path), not its path. Received data starting "
                "with:",
                header,
            ],
        )
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        shape = tf.shape(image)
        (decode, begin, cut), plan = window_plan(shape[0], shape[1])
        top, first, rows, wider = tf.unstack(decode)
        pixels = tf.slice(image, [top, first, 0], [rows, wider, 3])
        return tf.slice(pixels, begin, cut), plan

    return tf.cond(tf.io.is_jpeg(contents), jpeg, other)
