"""The base class of the crop layers."""

from keras_trainplus import _validation
from keras_trainplus.layers._geometric import GeometricAugmentation


class CropAugmentation(GeometricAugmentation):
    """A crop of the input resized to `(height, width)`: an axis-aligned map.

    Subclasses implement `random_parameters`, `source_axes` (the input rows and
    columns each output row and column reads, never outside the image) and
    `source_coordinates`.

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

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width})
        return config
