"""Test-time augmentation: average a model over flips and a fixed set of crops."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus._validation import check_bool
from keras_trainplus._validation import check_choice
from keras_trainplus._validation import check_number

CROPS = (None, "center", "five")


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class TestTimeAugmentation(keras.Model):
    """Averages an image model's predictions over flipped, cropped and scaled views.

    The test-time recipe of Krizhevsky et al. 2012 (AlexNet) and He et al. 2016
    (ResNet): evaluate the network on a fixed set of crops and scales of each test
    image, with their horizontal mirror images, and average the predictions. For an
    input image `x` (NHWC, larger than or equal to the model's input size `h x w`)
    the views are, for each factor `s` in `scales`, `x` resized to
    `round(s H) x round(s W)` (bilinear, `keras.ops.image.resize`), then

    - `crops=None`: the resized image itself (it must then be `h x w`);
    - `crops="center"`: its central `h x w` crop;
    - `crops="five"`: its four corner crops and central crop (the centre's offset is
      rounded down), in the order top-left, top-right, bottom-left, bottom-right,
      centre;

    each also mirrored left-right when `flips=True` (so `crops="five"` with flips is
    the classical 10-crop). With `V` views `v_1 ... v_V` the output is
    `1/V sum_j model(v_j(x))`, the arithmetic mean of the model's outputs (feed it
    probabilities). All `V * batch` views go through the model in a single forward
    pass, so the call compiles to one graph under XLA.

    Args:
        model: a built image model with one input of shape `(h, w, channels)`
            (channels last) and one output. Defaults to none (required).
        flips: also average over left-right mirror images. Defaults to `True`.
        crops: `None`, `"center"` or `"five"`. Defaults to `"five"`.
        scales: a non-empty sequence of positive resize factors applied before
            cropping. Defaults to `(1.0,)`.
        **kwargs: base `keras.Model` arguments (`name`, `dtype`...). Defaults to
            none.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> tta = TestTimeAugmentation(model, flips=True, crops="five")  # 10-crop
    >>> tta.predict(np.random.rand(2, 10, 10, 3), verbose=0).shape
    (2, 10)
    """

    def __init__(self, model, flips=True, crops="five", scales=(1.0,), **kwargs):
        super().__init__(**kwargs)
        inputs = (
            getattr(model, "inputs", None) if isinstance(model, keras.Model) else None
        )
        if not inputs or len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(
                "Argument `model` must be a built Keras model with one image input "
                f"of shape (batch, height, width, channels). Received: model={model!r}"
            )
        if len(model.outputs) != 1:
            raise ValueError(
                "Argument `model` must have one output. "
                f"Received: {len(model.outputs)} outputs"
            )
        self.crop_size = tuple(inputs[0].shape[1:3])
        if None in self.crop_size:
            raise ValueError(
                "Argument `model` must have a fixed input height and width. "
                f"Received input shape {inputs[0].shape}"
            )
        self.flips = check_bool("flips", flips)
        self.crops = check_choice("crops", crops, CROPS)
        try:
            scales = tuple(scales)
        except TypeError:
            scales = ()
        if not scales:
            raise ValueError(
                "Argument `scales` must be a non-empty sequence of positive numbers. "
                f"Received: scales={scales!r}"
            )
        self.scales = tuple(
            check_number("scales", s, low=0.0, low_inclusive=False) for s in scales
        )
        self.model = model
        self._output_shape = tuple(model.outputs[0].shape[1:])
        self.built = True

    @property
    def num_views(self):
        """The number of views averaged per image."""
        per_scale = 5 if self.crops == "five" else 1
        return len(self.scales) * per_scale * (2 if self.flips else 1)

    def _windows(self, height, width):
        h, w = self.crop_size
        if (
            height < h
            or width < w
            or (self.crops is None and (height, width) != (h, w))
        ):
            need = "equal to" if self.crops is None else "at least"
            raise ValueError(
                f"TestTimeAugmentation: views of size {height}x{width} must be {need} "
                f"the model's input size {h}x{w} (crops={self.crops!r}, "
                f"scales={self.scales})."
            )
        centre = ((height - h) // 2, (width - w) // 2)
        if self.crops == "five":
            return [
                (0, 0),
                (0, width - w),
                (height - h, 0),
                (height - h, width - w),
                centre,
            ]
        return [centre]

    def views(self, images):
        """The views of `images` on a new leading axis: `(V, batch, h, w, c)`."""
        height, width = images.shape[1], images.shape[2]
        h, w = self.crop_size
        views = []
        for scale in self.scales:
            size = (int(round(scale * height)), int(round(scale * width)))
            scaled = images
            if size != (height, width):
                scaled = ops.image.resize(
                    images, size, interpolation="bilinear", data_format="channels_last"
                )
            for top, left in self._windows(*size):
                crop = scaled[:, top : top + h, left : left + w, :]
                views.append(crop)
                if self.flips:
                    views.append(ops.flip(crop, axis=2))
        return ops.stack(views, axis=0)

    def call(self, inputs, training=False):
        views = self.views(inputs)
        count = views.shape[0]
        batched = ops.reshape(views, (-1,) + tuple(views.shape[2:]))
        outputs = self.model(batched, training=training)
        outputs = ops.reshape(outputs, (count, -1) + self._output_shape)
        return ops.mean(outputs, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._output_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "flips": self.flips,
                "crops": self.crops,
                "scales": list(self.scales),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        return cls(**config)
