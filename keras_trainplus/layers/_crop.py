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
        if not args and is_graph_image(inputs):
            # One image in a TensorFlow graph: a `tf.data` map before `batch()`,
            # under any Keras backend. Keras's data layers would first cast the
            # whole image to the compute dtype; the per-image path reads only the
            # crop's window, in the image's own dtype.
            with _compat.computing_with([self], "tensorflow"):
                return self._crop_single(inputs, kwargs.get("training", True))
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=True):
        if (
            self.backend.name == "tensorflow"
            and len(inputs.shape) == 3
            and not _compat.in_tensorflow_xla_context()
        ):
            return self._crop_single(inputs, training)
        return super().call(inputs, training=training)

    def _crop_single(self, image, training):
        """One decoded image `(H, W, C)`, computed with TensorFlow outside XLA."""
        import tensorflow as tf

        image = tf.convert_to_tensor(image)
        shape = tf.shape(image)
        # Checked before the window is cut (an empty image has none), with the
        # shape already computed: the fewest ops per image.
        check = self.empty_image_check(image, shape)
        rows = 0
        if self.data_format == "channels_first":
            image, rows = tf.transpose(image, (1, 2, 0)), 1
        training = True if training is None else training
        cut, plan = self.crop_plan(training, shape[rows], shape[rows + 1])
        with tf.control_dependencies([] if check is None else [check]):
            pixels = tf.slice(image, cut["begin"], cut["size"])
        out = self.to_output_dtype(self.read_window(pixels, plan, training))
        if self.data_format == "channels_first":
            out = tf.transpose(out, (2, 0, 1))
        return out

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
                pixels, plan = decode_window(
                    contents,
                    lambda height, width: self.crop_plan(training, height, width),
                    name,
                )
                out = self.read_window(pixels, plan, training)
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

    def crop_plan(self, training, height, width):
        """What the crop of one image of `(height, width)` reads: `(cut, plan)`.

        `cut` cuts the window that holds every pixel the crop reads out of the
        image: int32 `tf.slice` `"begin"` and `"size"` for a decoded image, and
        `widened_window`'s slices (`"jpeg"`) for a JPEG. `plan` is what
        `read_window` needs besides the window's pixels (here, the read
        coordinates and the window). In training the crop is drawn here (by
        `random_parameters(1, ...)`); else it is the inference crop.
        """
        backend = self.backend
        if training:
            transformation = self.random_parameters(1, height, width)
        else:
            transformation = self.inference_parameters(1, height, width)
        ys, xs = self.source_axes(transformation, height, width)
        window = _sampling.read_window(backend, ys, xs, height, width)
        zero, channels = (
            backend.numpy.zeros((), "int32"),
            backend.numpy.full((), -1, "int32"),
        )
        cut = {
            "begin": backend.numpy.stack([window[0], window[1], zero]),
            "size": backend.numpy.stack([window[2], window[3], channels]),
            "jpeg": widened_window(backend, window, width),
        }
        return cut, (window, ys, xs)

    def read_window(self, pixels, plan, training):
        """The float32 `(height, width, channels)` crop from the window's `pixels`."""
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


def is_graph_image(inputs):
    """Whether `inputs` is one image `(H, W, C)` in a TensorFlow graph (not XLA)."""
    if "tensorflow" not in sys.modules or isinstance(inputs, keras.KerasTensor):
        return False
    import tensorflow as tf

    return (
        isinstance(inputs, tf.Tensor)
        and not tf.executing_eagerly()
        and inputs.shape.rank == 3
        and not _compat.in_tensorflow_xla_context()
    )


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


def decode_window(contents, crop_plan, layer_name):
    """Decodes the window of an encoded image that a crop reads.

    Args:
        contents: a scalar string tensor, a JPEG, PNG, GIF, BMP or WebP file.
        crop_plan: `crop_plan(height, width)` returns `(cut, plan)` for an image
            of that size, as `CropAugmentation.crop_plan`.
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
        cut, plan = crop_plan(size[0], size[1])
        decode, begin, size = cut["jpeg"]
        pixels = tf.io.decode_and_crop_jpeg(contents, decode, channels=3)
        return tf.slice(pixels, begin, size), plan

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
        cut, plan = crop_plan(shape[0], shape[1])
        return tf.slice(image, cut["begin"], cut["size"]), plan

    return tf.cond(tf.io.is_jpeg(contents), jpeg, other)
