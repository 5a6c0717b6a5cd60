"""RandomAffine: rotation, translation, zoom, stretch and shear in one resample."""

import math

import keras

from keras_trainplus import _compat
from keras_trainplus import _validation
from keras_trainplus.layers import _sampling
from keras_trainplus.layers._geometric import GeometricAugmentation


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class RandomAffine(GeometricAugmentation):
    """Random rotation, translation, zoom, stretch and shear, resampled ONCE.

    Chaining Keras's `RandomRotation`, `RandomTranslation`, `RandomZoom` and
    `RandomShear` interpolates the image four times (slower, and blurrier each
    time). This layer draws all five parameters per sample, composes them into one
    matrix and reads the input once. With `c` the image centre
    `((W - 1) / 2, (H - 1) / 2)` and points `p = (x, y)` in pixel coordinates (row
    `y` pointing down), the output pixel `p` reads the input at

        g(p) = A (p - c - t) + c,    A = R(theta) [[1, s_x], [s_y, 1]] D,
        R(theta) = [[cos theta, -sin theta], [sin theta, cos theta]],
        D = diag((1 + z) (1 + s), 1 + z),    t = (t_x W, t_y H).

    Conventions are Keras's: `theta = 2 pi * rotation` (positive turns the content
    counter-clockwise on screen), `t` shifts the content right/down for positive
    factors, `z > 0` zooms out (the output shows a region `1 + z` times larger), `s`
    stretches the sampled width relative to the height, and `s_x, s_y` are shear
    coefficients (tangents of the shear angles) as in `RandomShear`. Each factor is
    drawn uniformly and independently per sample; a single number `f` means
    `(-f, f)`.

    On TensorFlow (including `tf.data` under any backend) the resample runs in
    TensorFlow's fused projective-transform kernel (`keras.ops.image.affine_transform`,
    same coordinates and fill modes) except for `fill_mode="wrap"` and under XLA
    (`jit_compile=True`, which cannot compile that kernel); elsewhere in
    keras_trainplus's gather core. Both read each output pixel once.

    At inference (`training=False`) the layer is the identity.

    Args:
        rotation: fraction of a full turn, a number `f` for `(-f, f)` or a pair,
            within [-1, 1]. Defaults to `0.0`.
        translation: fraction of the width (x) and height (y), drawn independently
            per axis, within [-1, 1]. Defaults to `0.0`.
        zoom: `z`, a number or pair, each > -1. Defaults to `0.0`.
        stretch: `s`, a number or pair, each > -1. Defaults to `0.0`.
        shear: shear coefficient, drawn independently for `s_x` and `s_y`, within
            [-1, 1]. Defaults to `0.0`.
        fill_mode: `"reflect"`, `"wrap"`, `"constant"` or `"nearest"`. Defaults to
            `"reflect"`.
        fill_value: value outside the image with `fill_mode="constant"`. Defaults to
            `0.0`.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `data_format`, `name`, `dtype`.

    Example:

    >>> layer = RandomAffine(rotation=0.05, translation=0.1, zoom=0.1, shear=0.1,
    ...                      seed=0)
    >>> layer(np.zeros((2, 32, 32, 3))).shape
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        rotation=0.0,
        translation=0.0,
        zoom=0.0,
        stretch=0.0,
        shear=0.0,
        fill_mode="reflect",
        fill_value=0.0,
        interpolation="bilinear",
        seed=None,
        **kwargs,
    ):
        super().__init__(
            interpolation=interpolation,
            fill_mode=fill_mode,
            fill_value=fill_value,
            seed=seed,
            **kwargs,
        )
        self.rotation = _validation.check_range_pair("rotation", rotation, -1.0, 1.0)
        self.translation = _validation.check_range_pair(
            "translation", translation, -1.0, 1.0
        )
        self.zoom = _validation.check_range_pair(
            "zoom", zoom, -1.0, low_inclusive=False
        )
        self.stretch = _validation.check_range_pair(
            "stretch", stretch, -1.0, low_inclusive=False
        )
        self.shear = _validation.check_range_pair("shear", shear, -1.0, 1.0)

    def random_parameters(self, batch, height, width):
        backend = self.backend
        ranges = [
            self.rotation,
            self.translation,
            self.translation,
            self.zoom,
            self.stretch,
            self.shear,
            self.shear,
        ]
        low = backend.convert_to_tensor([r[0] for r in ranges], "float32")
        high = backend.convert_to_tensor([r[1] for r in ranges], "float32")
        u = backend.random.uniform((batch, len(ranges)), seed=self._seed())
        values = low + u * (high - low)
        return {
            "angle": values[:, 0] * (2.0 * math.pi),
            "translation": values[:, 1:3],
            "zoom": values[:, 3],
            "stretch": values[:, 4],
            "shear": values[:, 5:7],
        }

    def matrices(self, transformation, height, width):
        """The per-sample `(batch, 2, 3)` matrices of `g` acting on `(x, y, 1)`."""
        backend = self.backend
        np_ = backend.numpy
        angle = backend.cast(transformation["angle"], "float32")
        cos, sin = np_.cos(angle), np_.sin(angle)
        shear = backend.cast(transformation["shear"], "float32")
        sx, sy = shear[:, 0], shear[:, 1]
        zoom = 1.0 + backend.cast(transformation["zoom"], "float32")
        dx = zoom * (1.0 + backend.cast(transformation["stretch"], "float32"))
        dy = zoom
        # A = R [[1, sx], [sy, 1]] diag(dx, dy)
        a00 = (cos - sin * sy) * dx
        a01 = (cos * sx - sin) * dy
        a10 = (sin + cos * sy) * dx
        a11 = (sin * sx + cos) * dy
        width = backend.cast(width, "float32")
        height = backend.cast(height, "float32")
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        translation = backend.cast(transformation["translation"], "float32")
        px = -cx - translation[:, 0] * width
        py = -cy - translation[:, 1] * height
        b0 = a00 * px + a01 * py + cx
        b1 = a10 * px + a11 * py + cy
        rows = [np_.stack([a00, a01, b0], axis=-1), np_.stack([a10, a11, b1], axis=-1)]
        return np_.stack(rows, axis=1)

    def source_coordinates(self, ys, xs, transformation, height, width):
        matrices = self.matrices(transformation, height, width)
        ys, xs = _sampling.apply_affine(self.backend, matrices, ys, xs)
        return ys, xs, None

    def transform_images(self, images, transformation):
        # TensorFlow's kernel wraps with period `size - 1`, not `size` (the gather
        # core keeps "wrap" the same on every backend), and XLA cannot compile it.
        if (
            self.backend.name != "tensorflow"
            or self.fill_mode == "wrap"
            or _compat.in_tensorflow_xla_context()
        ):
            return super().transform_images(images, transformation)
        shape = self.backend.core.shape(images)
        matrices = self.matrices(transformation, shape[1], shape[2])
        batch = shape[0]
        flat = self.backend.numpy.concatenate(
            [
                self.backend.numpy.reshape(matrices, (batch, 6)),
                self.backend.numpy.zeros((batch, 2), "float32"),
            ],
            axis=-1,
        )
        return self.backend.image.affine_transform(
            images,
            flat,
            interpolation=self.interpolation,
            fill_mode=self.fill_mode,
            fill_value=self.fill_value,
            data_format="channels_last",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rotation": self.rotation,
                "translation": self.translation,
                "zoom": self.zoom,
                "stretch": self.stretch,
                "shear": self.shear,
            }
        )
        return config
