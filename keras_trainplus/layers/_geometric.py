"""The base class of the geometric augmentation layers."""

from keras_trainplus import _validation
from keras_trainplus.layers import _sampling
from keras_trainplus.layers._base import ImageAugmentation


class GeometricAugmentation(ImageAugmentation):
    """An augmentation that moves pixels: output pixel `p` reads the input at `g(p)`.

    Subclasses implement, on a `channels_last` batch:
    - `random_parameters(batch, height, width)`: every random draw, for inputs of
      that size, as a dict of per-sample tensors (the layer's transformation);
    - `source_coordinates(ys, xs, transformation, height, width)`: the map `g` from
      output pixel coordinates `(ys, xs)`, each `(batch, out_height, out_width)`, to
      input coordinates in an input of size `(height, width)`; returns
      `(ys, xs, valid)` where `valid` is `None` or marks points that have a source;
    - `output_size(height, width)` when the layer changes the image size.

    `transform_images` then reads the input once through the shared sampling core
    (`_sampling.sample`), and `GeometricChain` can compose several layers' maps into
    a single resample.

    Args:
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        fill_mode: `"reflect"`, `"wrap"`, `"constant"` or `"nearest"`: how points
            outside the input are read. Defaults to `"reflect"`.
        fill_value: value read outside the input with `fill_mode="constant"`.
            Defaults to `0.0`.
        **kwargs: `ImageAugmentation` arguments (`data_format`, `seed`, `name`, ...).
    """

    # Whether `fill_mode` and `fill_value` are constructor arguments (the crop layers
    # read inside the image only and fix them).
    FILL_ARGUMENTS = True
    NEEDS_PIXELS = True

    def __init__(
        self, interpolation="bilinear", fill_mode="reflect", fill_value=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.interpolation = _sampling.check_interpolation(interpolation)
        self.fill_mode = _sampling.check_fill_mode(fill_mode)
        self.fill_value = _validation.check_number("fill_value", fill_value)

    def output_size(self, height, width):
        return height, width

    def random_parameters(self, batch, height, width):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement random_parameters()"
        )

    def source_coordinates(self, ys, xs, transformation, height, width):
        raise NotImplementedError(
            f"{self.__class__.__name__} must implement source_coordinates()"
        )

    def source_axes(self, transformation, height, width):
        """For axis-aligned maps, the input rows and columns that are read.

        Returns `(ys, xs)` of shapes `(batch, out_height)` and `(batch, out_width)`
        when output pixel `(i, j)` reads input `(ys[i], xs[j])` (crops, resizes), so
        that the separable reader can be used; `None` (the default) otherwise.
        """
        return None

    def get_random_transformation(self, images):
        shape = self.backend.core.shape(images)
        return self.random_parameters(shape[0], shape[1], shape[2])

    def transform_images(self, images, transformation):
        backend = self.backend
        shape = backend.core.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        dtype = images.dtype
        images = backend.cast(images, "float32")
        axes = self.source_axes(transformation, height, width)
        if axes is not None:
            out = _sampling.sample_separable(
                backend,
                images,
                *axes,
                self.interpolation,
                self.fill_mode,
                self.fill_value,
            )
            return backend.cast(out, dtype)
        out_height, out_width = self.output_size(height, width)
        ys, xs = _sampling.output_grid(backend, batch, out_height, out_width)
        ys, xs, valid = self.source_coordinates(ys, xs, transformation, height, width)
        return backend.cast(self.resample(images, ys, xs, valid), dtype)

    def resample(self, images, ys, xs, valid=None):
        """Reads float32 `images` at `(ys, xs)` with this layer's interpolation/fill."""
        return _sampling.sample(
            self.backend,
            images,
            ys,
            xs,
            self.interpolation,
            self.fill_mode,
            self.fill_value,
            valid,
        )

    def compute_output_shape(self, input_shape):
        return resized_shape(input_shape, self.data_format, self.output_size)

    def get_config(self):
        config = super().get_config()
        config["interpolation"] = self.interpolation
        if self.FILL_ARGUMENTS:
            config.update({"fill_mode": self.fill_mode, "fill_value": self.fill_value})
        return config


def resized_shape(input_shape, data_format, output_size):
    """`input_shape` with its spatial dimensions replaced by `output_size(h, w)`."""
    shape = list(input_shape)
    rows = len(shape) - (2 if data_format == "channels_first" else 3)
    shape[rows], shape[rows + 1] = output_size(shape[rows], shape[rows + 1])
    return tuple(shape)
