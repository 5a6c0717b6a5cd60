"""RandomLensDistortion: random radial (barrel / pincushion) distortion."""

import keras

from keras_trainplus import _validation
from keras_trainplus.layers._geometric import GeometricAugmentation
from keras_trainplus.layers._sampling import per_sample

NEWTON_STEPS = 12
LARGEST_RADIUS = 100.0


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class RandomLensDistortion(GeometricAugmentation):
    """Random radial lens distortion, Brown's polynomial model.

    In normalised coordinates (origin at the distortion centre, unit length half
    the image diagonal, so the corners of an undistorted centred image are at
    `r = 1`) the point of the input at radius `r` moves, along its ray, to radius

        r' = r (1 + k1 r^2 + k2 r^4)

    in the output: barrel distortion for `k1 < 0` (content pulled towards the
    centre), pincushion for `k1 > 0`. Direction of the mapping: the formula goes from
    input to output (the camera-model convention of OpenCV); to read the input, each
    output pixel at radius `r'` needs the inverse, `r` with `f(r) = r'`, found by a
    fixed number of Newton steps on `f(r) = r (1 + k1 r^2 + k2 r^4)` restricted to
    its first increasing branch. Output pixels that no input point reaches (the
    corners under strong barrel distortion) get `fill_value`; input points beyond the
    image are read with `fill_mode`.

    Per sample, `k1`, `k2` are drawn uniformly from their ranges and the centre is
    moved from the image centre by `(dx W / 2, dy H / 2)`, `dx, dy ~ U(-center_jitter,
    center_jitter)` (the unit length stays half the image diagonal).

    At inference (`training=False`) the layer is the identity.

    Args:
        k1: `(min, max)` range of the quadratic coefficient, a number `f` for
            `(-f, f)`, within [-1, 1]. Defaults to `(-0.2, 0.2)`.
        k2: `(min, max)` range of the quartic coefficient, within [-1, 1].
            Defaults to `(0.0, 0.0)`.
        center_jitter: largest centre displacement, a fraction of the half width /
            half height, in [0, 1]. Defaults to `0.0`.
        fill_mode: `"reflect"`, `"wrap"`, `"constant"` or `"nearest"`. Defaults to
            `"reflect"`.
        fill_value: value of unreached pixels and, with `fill_mode="constant"`, of
            points outside the image. Defaults to `0.0`.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        seed: integer seed. Defaults to `None`.
        **kwargs: `data_format`, `name`, `dtype`.

    Example:

    >>> layer = RandomLensDistortion(k1=(-0.3, 0.3), seed=0)
    >>> layer(np.zeros((2, 32, 32, 3))).shape
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        k1=(-0.2, 0.2),
        k2=(0.0, 0.0),
        center_jitter=0.0,
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
        self.k1 = _validation.check_range_pair("k1", k1, -1.0, 1.0)
        self.k2 = _validation.check_range_pair("k2", k2, -1.0, 1.0)
        self.center_jitter = _validation.check_number(
            "center_jitter", center_jitter, 0.0, 1.0
        )

    def random_parameters(self, batch, height, width):
        backend = self.backend
        jitter = self.center_jitter
        low = [self.k1[0], self.k2[0], -jitter, -jitter]
        high = [self.k1[1], self.k2[1], jitter, jitter]
        low = backend.convert_to_tensor(low, "float32")
        high = backend.convert_to_tensor(high, "float32")
        draws = backend.random.uniform((batch, 4), seed=self._seed())
        values = low + draws * (high - low)
        return {"k1": values[:, 0], "k2": values[:, 1], "center": values[:, 2:]}

    def _largest_radius(self, k1, k2):
        """End of the first increasing branch of `f`: first root of `f'(r) = 0`.

        `f'(r) = 1 + 3 k1 u + 5 k2 u^2` with `u = r^2`; `f' > 0` everywhere when it
        has no positive root (then `LARGEST_RADIUS` bounds the search).
        """
        np_ = self.backend.numpy
        big = LARGEST_RADIUS**2
        linear = np_.where(k1 < 0, -1.0 / (3.0 * np_.minimum(k1, -1e-12)), big)
        safe_k2 = np_.where(k2 == 0, 1.0, k2)
        discriminant = 9.0 * k1 * k1 - 20.0 * k2
        root = np_.sqrt(np_.maximum(discriminant, 0.0))
        roots = [(-3.0 * k1 - root) / (10.0 * safe_k2)]
        roots.append((-3.0 * k1 + root) / (10.0 * safe_k2))
        positive = [np_.where(u > 0, u, big) for u in roots]
        quadratic = np_.where(discriminant >= 0, np_.minimum(*positive), big)
        u = np_.minimum(np_.where(k2 == 0, linear, quadratic), big)
        return np_.sqrt(u)

    def source_coordinates(self, ys, xs, transformation, height, width):
        backend = self.backend
        np_ = backend.numpy
        k1 = per_sample(backend, backend.cast(transformation["k1"], "float32"))
        k2 = per_sample(backend, backend.cast(transformation["k2"], "float32"))
        center = backend.cast(transformation["center"], "float32")
        height = backend.cast(height, "float32")
        width = backend.cast(width, "float32")
        unit = np_.sqrt(height * height + width * width) / 2.0
        cx = (width - 1.0) / 2.0 + per_sample(backend, center[:, 0]) * width / 2.0
        cy = (height - 1.0) / 2.0 + per_sample(backend, center[:, 1]) * height / 2.0
        u, v = (xs - cx) / unit, (ys - cy) / unit
        target = np_.sqrt(u * u + v * v)

        def f(r):
            r2 = r * r
            return r * (1.0 + k1 * r2 + k2 * r2 * r2)

        cap = self._largest_radius(k1, k2)
        reached = f(cap) >= target
        r = np_.minimum(target, cap)
        for _ in range(NEWTON_STEPS):
            r2 = r * r
            slope = 1.0 + 3.0 * k1 * r2 + 5.0 * k2 * r2 * r2
            r = np_.clip(r - (f(r) - target) / np_.maximum(slope, 1e-6), 0.0, cap)
        scale = np_.where(target > 1e-6, r / np_.maximum(target, 1e-6), 1.0)
        return cy + v * scale * unit, cx + u * scale * unit, reached

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "k1": self.k1,
                "k2": self.k2,
                "center_jitter": self.center_jitter,
            }
        )
        return config
