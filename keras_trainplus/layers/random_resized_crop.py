"""RandomResizedCrop: the Inception / torchvision random crop, vectorised."""

import math
import weakref

import keras

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.layers import _sampling
from keras_trainplus.layers._crop import CropAugmentation
from keras_trainplus.layers._crop import widened_window

ATTEMPTS = 10
# Per sample: ATTEMPTS areas, ATTEMPTS log-ratios, top, left, flip.
DRAWS = 2 * ATTEMPTS + 3
# The compiled functions of each layer that has run them, kept
# outside the layer: as a layer attribute TensorFlow would track it as model state
# (a SavedModel export would save it). It refers to its layer weakly, so an entry
# goes when its layer does.
_COMPILED = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class RandomResizedCrop(CropAugmentation):
    """Random crop of random area and aspect ratio, resized to `(height, width)`.

    The Inception crop (Szegedy et al., 2015, "Going deeper with convolutions"), as
    torchvision's `RandomResizedCrop` draws it: the crop's area is a fraction
    `a ~ U(scale)` of the image area `A` and its aspect ratio `r = w / h` is
    log-uniform in `ratio`, so `w = round(sqrt(a A r))`, `h = round(sqrt(a A / r))`;
    a pair that does not fit in the image is redrawn, up to 10 times, after which the
    crop falls back to the largest centred crop whose ratio is clamped into `ratio`.
    Here the 10 candidates are drawn at once per sample and the first that fits is
    taken (the same distribution as torchvision's loop, without a loop); the crop's
    position is uniform over the integer offsets where it fits.

    The crop is resized with one bilinear (or nearest) read per output pixel, with
    half-pixel centres and no antialiasing (as `tf.image.resize(antialias=False)`),
    reading the crop on its own (rows and columns near its edge are clamped into it,
    as when the crop is cut out first).

    At inference (`training=False`) the layer returns the largest centred crop with
    the output's aspect ratio, resized to `(height, width)` (what
    `keras.layers.Resizing(crop_to_aspect_ratio=True)` does).

    Input images may have any size, including different sizes per element of a
    `tf.data` pipeline mapped before batching; the output is `(height, width)`. The
    layer also takes one encoded image file, a scalar string such as
    `tf.io.read_file(path)` (in `tf.data` under any backend, or eagerly): a JPEG is
    then decoded only inside the crop window, other formats (PNG, GIF, BMP, WebP)
    whole, and the crops are those of the decoded image.

    Args:
        height: output height in pixels, an integer >= 1.
        width: output width in pixels, an integer >= 1.
        scale: `(min, max)` area fraction, within (0, 1]. Defaults to `(0.08, 1.0)`.
        ratio: `(min, max)` aspect ratio `w / h`, both > 0. Defaults to
            `(3 / 4, 4 / 3)`.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        horizontal_flip: whether to also mirror the output left-right with
            probability 1/2 (torchvision's `RandomResizedCrop` + `RandomHorizontalFlip`
            in the same read; the crops stay those of `False` with the same seed).
            Defaults to `False`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `data_format`, `name`, `dtype` (`"uint8"` rounds the outputs
            to integers: a quarter of the memory of float32 batches).

    Example:

    >>> layer = RandomResizedCrop(224, 224, seed=0)
    >>> layer(np.zeros((2, 300, 400, 3))).shape
    (2, 224, 224, 3)
    """

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        ratio=(3 / 4, 4 / 3),
        interpolation="bilinear",
        horizontal_flip=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            height, width, interpolation=interpolation, seed=seed, **kwargs
        )
        self.scale = _validation.check_range_pair(
            "scale", scale, 0.0, 1.0, low_inclusive=False
        )
        self.ratio = _validation.check_range_pair(
            "ratio", ratio, 0.0, low_inclusive=False
        )
        self.horizontal_flip = _validation.check_bool(
            "horizontal_flip", horizontal_flip
        )

    def draws_for(self, batch):
        """Every draw of each sample at once, float32 whatever `floatx` is: 10
        (area, log-ratio) candidates, the position and the flip (drawn whether or
        not it is used, so that the crops of `horizontal_flip=True` are those of
        `False`)."""
        if (
            self.backend.name == "tensorflow"
            and not _compat.in_tensorflow_xla_context()
        ):
            # XLA generates other numbers than TensorFlow's kernels from one seed;
            # the per-image path draws inside its compiled function, so the batched
            # path draws with XLA too: the same crops either way.
            return self._compiled()["draws"](batch)
        return self._uniform_draws(batch)

    def _uniform_draws(self, batch):
        return self.backend.random.uniform(
            (batch, DRAWS), dtype="float32", seed=self._seed()
        )

    def parameters_from_draws(self, draws, height, width):
        """The crop boxes (and flips) of `draws`, uniform in [0, 1): deterministic."""
        backend = self.backend
        np_ = backend.numpy
        height = backend.cast(height, "float32")
        width = backend.cast(width, "float32")
        low, high = self.scale
        area = height * width * (low + draws[:, :ATTEMPTS] * (high - low))
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        log_ratio = draws[:, ATTEMPTS : 2 * ATTEMPTS]
        aspect = np_.exp(log_low + log_ratio * (log_high - log_low))
        crop_w = np_.round(np_.sqrt(area * aspect))
        crop_h = np_.round(np_.sqrt(area / aspect))
        fits = (crop_w >= 1) & (crop_h >= 1) & (crop_w <= width) & (crop_h <= height)
        fits_int = backend.cast(fits, "int32")
        first = fits & (np_.cumsum(fits_int, axis=1) == 1)
        found = np_.any(fits, axis=1)

        def pick(values, fallback):
            chosen = np_.sum(np_.where(first, values, 0.0), axis=1)
            return np_.where(found, chosen, fallback)

        fallback_h, fallback_w = self._fallback_size(height, width)
        crop_h = pick(crop_h, fallback_h)
        crop_w = pick(crop_w, fallback_w)
        top = np_.floor(draws[:, -3] * (height - crop_h + 1.0))
        left = np_.floor(draws[:, -2] * (width - crop_w + 1.0))
        top = np_.where(found, top, np_.floor((height - crop_h) / 2.0))
        left = np_.where(found, left, np_.floor((width - crop_w) / 2.0))
        transformation = {"crop_boxes": np_.stack([top, left, crop_h, crop_w], axis=-1)}
        if self.horizontal_flip:
            transformation["flips"] = draws[:, -1] < 0.5
        return transformation

    def _fallback_size(self, height, width):
        """torchvision's fallback: the whole image, its ratio clamped into `ratio`."""
        np_ = self.backend.numpy
        low, high = self.ratio
        in_ratio = width / height
        fallback_h = np_.where(in_ratio < low, np_.round(width / low), height)
        fallback_w = np_.where(in_ratio > high, np_.round(height * high), width)
        return fallback_h, fallback_w

    def source_coordinates(self, ys, xs, transformation, height, width):
        boxes = transformation["crop_boxes"]
        if "flips" in transformation:
            flips = _sampling.per_sample(
                self.backend, transformation["flips"], len(xs.shape)
            )
            xs = self.backend.numpy.where(flips, (self.width - 1.0) - xs, xs)
        ys, xs = _sampling.crop_coordinates(
            self.backend, ys, xs, boxes, self.height, self.width
        )
        ys, xs = _sampling.clamp_to_boxes(self.backend, ys, xs, boxes)
        return ys, xs, None

    def source_axes(self, transformation, height, width):
        ys = self.backend.numpy.arange(self.height, dtype="float32")[None, :]
        xs = self.backend.numpy.arange(self.width, dtype="float32")[None, :]
        ys, xs, _ = self.source_coordinates(ys, xs, transformation, height, width)
        return ys, xs

    def crop_plan(self, training, height, width):
        # Training: the draws, the box and its slices from one XLA-compiled function.
        if not training:
            return super().crop_plan(training, height, width)
        _, _, cut = self._compiled()["crop"](height, width)
        return cut, cut["reverse"]

    def read_window(self, pixels, plan, training):
        # Training: the window is the crop box itself, resized by one kernel.
        if not training:
            return super().read_window(pixels, plan, training)
        return self._resize_crop(pixels, plan)

    def _resize_crop(self, pixels, reverse):
        """A cut-out crop `(rows, cols, C)` resized to the output, then reversed
        along the axes where `reverse` (a `(3,)` bool mask) is true.

        TensorFlow's fused `tf.image.resize` kernel (half-pixel centres, no
        antialiasing, reads clamped into the crop) gives the result of the
        separable gather that batches, compiled models and the other backends use,
        in one kernel. Returns float32.
        """
        import tensorflow as tf

        # The fused kernel reads float32 faster than uint8; both give the same values.
        pixels = tf.cast(pixels, "float32")
        method = "bilinear" if self.interpolation == "bilinear" else "nearest"
        out = tf.image.resize(pixels, (self.height, self.width), method=method)
        if self.horizontal_flip:
            # One kernel with a per-call axis mask (a `tf.cond` would call a function).
            out = tf.raw_ops.Reverse(tensor=out, dims=reverse)
        return out

    def _compiled(self):
        """This layer's XLA-compiled `tf.function`s (built once, then cached).

        - `"draws"`: `batch -> draws`, the uniform draws of `batch` samples;
        - `"crop"`: `(height, width) -> (box, flip, cut)`: one image's draws, its
          int32 crop box and flip, and what cuts the crop out in one op each (the
          per-element cost of a `tf.data` map grows with its op count): the
          `tf.slice` begin and size for a decoded image, `widened_window`'s
          slices for a JPEG, and the `Reverse` axis mask.
        """
        self._seed()  # the generator's variables exist before any trace
        compiled = _COMPILED.get(self)
        if compiled is None:
            import tensorflow as tf

            layer = weakref.ref(self)

            def crop(height, width):
                draws = layer()._uniform_draws(1)
                transformation = layer().parameters_from_draws(draws, height, width)
                box = tf.cast(transformation["crop_boxes"][0], "int32")
                flips = transformation.get("flips")
                flip = tf.convert_to_tensor(False if flips is None else flips[0])
                cut = {
                    "begin": tf.stack([box[0], box[1], 0]),
                    "size": tf.stack([box[2], box[3], -1]),
                    "jpeg": widened_window(layer().backend, box, width),
                    "reverse": tf.stack([False, flip, False]),
                }
                return box, flip, cut

            def function(python_function, arguments):
                return tf.function(
                    python_function,
                    jit_compile=True,
                    reduce_retracing=True,
                    input_signature=[tf.TensorSpec((), "int32")] * arguments,
                )

            compiled = {
                "draws": function(lambda batch: layer()._uniform_draws(batch), 1),
                "crop": function(crop, 2),
            }
            _COMPILED[self] = compiled
        return compiled

    def inference_parameters(self, batch, height, width):
        """The largest centred box with the output's aspect ratio."""
        np_ = self.backend.numpy
        height = self.backend.cast(height, "float32")
        width = self.backend.cast(width, "float32")
        crop_h = np_.minimum(height, width * (self.height / self.width))
        crop_w = np_.minimum(width, height * (self.width / self.height))
        box = np_.stack(
            [(height - crop_h) / 2.0, (width - crop_w) / 2.0, crop_h, crop_w]
        )
        return {"crop_boxes": np_.broadcast_to(box[None, :], (batch, 4))}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scale": self.scale,
                "ratio": self.ratio,
                "horizontal_flip": self.horizontal_flip,
            }
        )
        return config
