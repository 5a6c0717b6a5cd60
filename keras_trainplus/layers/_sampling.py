"""The sampling core shared by the geometric augmentation layers.

Every geometric layer describes its transformation as a map from output pixel
coordinates to input pixel coordinates (`GeometricAugmentation.source_coordinates`);
`sample` then reads the input there, once, with bilinear or nearest interpolation and
a fill mode for points outside the image. Axis-aligned maps (crops and resizes, where
each output row reads the same input rows and each output column the same input
columns) are read by `sample_separable` with the same interpolation and fill rules,
one axis at a time: it gathers whole rows and columns instead of single pixels, which
is several times faster on TensorFlow's CPU kernels. The crop geometry shared by the
crop layers (`crop_coordinates`, `clamp_to_boxes`, `crop_axes`, `read_window`) lives
here too.

Coordinates are pixel indices: the centre of pixel `(i, j)` (row, column) is the
point `(y, x) = (i, j)`, as in `scipy.ndimage` and `keras.ops.image.affine_transform`.

Every function takes `backend`, the layer's `self.backend`: the op modules
(`numpy`, `core`, ...) of the backend the layer computes with, which is TensorFlow
inside `tf.data` whatever the Keras backend.
"""

import keras

from keras_trainplus import _validation

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def check_fill_mode(fill_mode):
    return _validation.check_choice("fill_mode", fill_mode, FILL_MODES)


def check_interpolation(interpolation):
    return _validation.check_choice("interpolation", interpolation, INTERPOLATIONS)


def per_sample(backend, values, rank=3):
    """Reshapes per-sample values `(batch,)` to broadcast over rank-`rank` arrays."""
    return backend.numpy.reshape(values, (-1,) + (1,) * (rank - 1))


def output_grid(backend, batch, height, width, dtype="float32"):
    """Pixel-centre coordinates `(ys, xs)`, each of shape `(batch, height, width)`."""
    rows = backend.numpy.arange(height, dtype=dtype)
    cols = backend.numpy.arange(width, dtype=dtype)
    ys = backend.numpy.broadcast_to(rows[None, :, None], (batch, height, width))
    xs = backend.numpy.broadcast_to(cols[None, None, :], (batch, height, width))
    return ys, xs


def apply_affine(backend, matrices, ys, xs):
    """Maps `(ys, xs)` by per-sample `(batch, 2, 3)` matrices acting on `(x, y, 1)`."""
    m = [[per_sample(backend, matrices[:, r, c]) for c in range(3)] for r in range(2)]
    new_xs = m[0][0] * xs + m[0][1] * ys + m[0][2]
    new_ys = m[1][0] * xs + m[1][1] * ys + m[1][2]
    return new_ys, new_xs


def fold(backend, coords, size, fill_mode):
    """Brings coordinates back into the image by the fill mode.

    `coords` are integer pixel indices (brought into `[0, size)`) or continuous
    coordinates (brought into `[-0.5, size - 0.5]`, the image's extent: pixel `i`
    covers `[i - 0.5, i + 0.5]`). Returns `(coords, valid)`; `valid` is `None` unless
    `fill_mode == "constant"`, where it marks the points that were inside the image.

    - `"reflect"`: `(d c b a | a b c d | d c b a)`, reflection about the image's edge
      (scipy's `"reflect"`);
    - `"wrap"`: `(a b c d | a b c d | a b c d)` (scipy's `"grid-wrap"`);
    - `"nearest"`: `(a a a a | a b c d | d d d d)`;
    - `"constant"`: `(k k k k | a b c d | k k k k)` with `k = fill_value` (scipy's
      `"grid-constant"`: bilinear weights blend towards `k` across the border).
    """
    # The image's edge sits half a pixel before index 0: `half` moves it to 0 for
    # continuous coordinates; integer indices need no shift.
    floating = keras.backend.is_float_dtype(
        keras.backend.standardize_dtype(coords.dtype)
    )
    half = 0.5 if floating else 0
    size = backend.cast(size, coords.dtype)
    if fill_mode == "reflect":
        shifted = backend.numpy.mod(coords + half, 2 * size) - half
        mirrored = (2 * size - 1) - shifted
        return backend.numpy.where(shifted + half < size, shifted, mirrored), None
    if fill_mode == "wrap":
        return backend.numpy.mod(coords + half, size) - half, None
    clipped = backend.numpy.clip(coords, 0, size - 1)
    if fill_mode == "nearest":
        return clipped, None
    return clipped, (coords >= -half) & (coords <= size - 1 + half)


def sample(
    backend,
    images,
    ys,
    xs,
    interpolation="bilinear",
    fill_mode="reflect",
    fill_value=0.0,
    valid=None,
):
    """Reads `images` at per-sample coordinates: ONE resampling pass.

    Args:
        backend: the layer's `self.backend`.
        images: `(batch, height, width, channels)` floating images.
        ys, xs: `(batch, out_height, out_width)` input row/column coordinates.
        interpolation: `"bilinear"` or `"nearest"` (round half up).
        fill_mode: how points outside the image are read (see `fold`).
        fill_value: the value read outside the image when `fill_mode="constant"`.
        valid: optional boolean `(batch, out_height, out_width)`; `False` points get
            `fill_value` whatever the fill mode (points with no source at all).

    Returns:
        `(batch, out_height, out_width, channels)` in the dtype of `images`.
    """
    shape = backend.core.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    dtype = images.dtype
    flat = backend.numpy.reshape(images, (-1, channels))
    offsets = backend.numpy.arange(batch, dtype="int32") * (height * width)
    offsets = per_sample(backend, offsets)
    fill = backend.core.convert_to_tensor(fill_value, dtype=dtype)

    def gather(rows, cols):
        rows, row_ok = fold(backend, rows, height, fill_mode)
        cols, col_ok = fold(backend, cols, width, fill_mode)
        values = backend.numpy.take(flat, offsets + rows * width + cols, axis=0)
        if row_ok is None:
            return values
        return backend.numpy.where((row_ok & col_ok)[..., None], values, fill)

    if interpolation == "nearest":
        rows = backend.cast(backend.numpy.floor(ys + 0.5), "int32")
        cols = backend.cast(backend.numpy.floor(xs + 0.5), "int32")
        out = gather(rows, cols)
    else:
        y0 = backend.numpy.floor(ys)
        x0 = backend.numpy.floor(xs)
        wy = (ys - y0)[..., None]
        wx = (xs - x0)[..., None]
        r0 = backend.cast(y0, "int32")
        c0 = backend.cast(x0, "int32")
        top_left, top_right = gather(r0, c0), gather(r0, c0 + 1)
        bottom_left, bottom_right = gather(r0 + 1, c0), gather(r0 + 1, c0 + 1)
        top = top_left + wx * (top_right - top_left)
        bottom = bottom_left + wx * (bottom_right - bottom_left)
        out = top + wy * (bottom - top)
    if valid is not None:
        out = backend.numpy.where(valid[..., None], out, fill)
    return out


def sample_separable(
    backend,
    images,
    ys,
    xs,
    interpolation="bilinear",
    fill_mode="nearest",
    fill_value=0.0,
):
    """`sample` for axis-aligned maps: output `(i, j)` reads input `(ys[i], xs[j])`.

    Args:
        backend: the layer's `self.backend`.
        images: `(batch, height, width, channels)` floating images.
        ys: `(batch, out_height)` input row coordinates.
        xs: `(batch, out_width)` input column coordinates.
        interpolation, fill_mode, fill_value: as in `sample`. Bilinear weights are
            products of per-axis weights and a corner is outside the image when its
            row or its column is, so reading rows, then columns, gives `sample`'s
            result.

    Returns:
        `(batch, out_height, out_width, channels)` in the dtype of `images`.
    """
    shape = backend.core.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    out_height, out_width = backend.core.shape(ys)[1], backend.core.shape(xs)[1]
    fill = backend.core.convert_to_tensor(fill_value, dtype=images.dtype)

    def read_axis(table, coords, size):
        """Interpolates rows of `table` (`batch * size` rows) at `coords`."""
        offsets = backend.numpy.arange(batch, dtype="int32")[:, None] * size

        def read(index):
            index, valid = fold(backend, index, size, fill_mode)
            values = backend.numpy.take(table, offsets + index, axis=0)
            if valid is None:
                return values
            return backend.numpy.where(valid[..., None], values, fill)

        if interpolation == "nearest":
            return read(backend.cast(backend.numpy.floor(coords + 0.5), "int32"))
        lower = backend.numpy.floor(coords)
        weight = (coords - lower)[..., None]
        index = backend.cast(lower, "int32")
        first = read(index)
        return first + weight * (read(index + 1) - first)

    rows = read_axis(
        backend.numpy.reshape(images, (batch * height, width * channels)), ys, height
    )
    rows = backend.numpy.reshape(rows, (batch, out_height, width, channels))
    columns = backend.numpy.reshape(
        backend.numpy.transpose(rows, (0, 2, 1, 3)),
        (batch * width, out_height * channels),
    )
    out = read_axis(columns, xs, width)
    out = backend.numpy.reshape(out, (batch, out_width, out_height, channels))
    return backend.numpy.transpose(out, (0, 2, 1, 3))


def crop_coordinates(backend, ys, xs, boxes, out_height, out_width):
    """Maps output pixels to input pixels of per-sample `(top, left, h, w)` boxes.

    Half-pixel convention (as `tf.image.resize`, `torch` with `align_corners=False`):
    output pixel `i` of `out_height` covers `[i, i + 1)` of the box's `h` rows, so it
    reads row `top + (i + 0.5) h / out_height - 0.5`. `ys`, `xs` may be grids
    `(batch, out_height, out_width)` or axes `(1, out_height)`, `(1, out_width)`.
    """
    boxes = backend.cast(boxes, "float32")
    rank = len(ys.shape)
    top, left, rows, cols = (per_sample(backend, boxes[:, k], rank) for k in range(4))
    ys = top + (ys + 0.5) * (rows / out_height) - 0.5
    xs = left + (xs + 0.5) * (cols / out_width) - 0.5
    return ys, xs


def clamp_to_boxes(backend, ys, xs, boxes):
    """Clamps input coordinates into per-sample boxes: the crop is read on its own.

    The rows and columns read near a box's edge then stay inside it, as when the
    crop is cut out first and resized alone (torchvision, Albumentations,
    `tf.image.resize` of the slice), rather than blending in pixels beyond the box.
    """
    boxes = backend.cast(boxes, "float32")
    rank = len(ys.shape)
    top, left, rows, cols = (per_sample(backend, boxes[:, k], rank) for k in range(4))
    ys = backend.numpy.minimum(backend.numpy.maximum(ys, top), top + rows - 1.0)
    xs = backend.numpy.minimum(backend.numpy.maximum(xs, left), left + cols - 1.0)
    return ys, xs


def crop_axes(backend, boxes, out_height, out_width):
    """`crop_coordinates` per axis: `(batch, out_height)` and `(batch, out_width)`."""
    ys = backend.numpy.arange(out_height, dtype="float32")[None, :]
    xs = backend.numpy.arange(out_width, dtype="float32")[None, :]
    return crop_coordinates(backend, ys, xs, boxes, out_height, out_width)


def read_window(backend, ys, xs, height, width):
    """The part of an image that a read at axes `ys`, `xs` touches, as an int32 box.

    For one image: `ys` of shape `(1, out_height)` and `xs` of shape `(1, out_width)`
    are the input rows and columns that `sample_separable` reads (fill mode
    `"nearest"`). Bilinear and nearest reads of coordinate `c` touch pixels
    `floor(c)` and `floor(c) + 1`, clamped into the image, so the window runs from
    the clamped `floor(min)` to the clamped `floor(max) + 1`. Reading the window
    alone at `ys - top`, `xs - left` gives exactly the read of the whole image:
    clamping to the window's edges is clamping to the image's, for these indices.

    Returns:
        `(top, left, rows, cols)`, int32.
    """
    np_ = backend.numpy

    def span(coords, size):
        last = backend.cast(size, "float32") - 1.0
        first = np_.clip(np_.floor(np_.min(coords)), 0.0, last)
        end = np_.clip(np_.floor(np_.max(coords)) + 1.0, 0.0, last)
        return first, end - first + 1.0

    top, rows = span(ys, height)
    left, cols = span(xs, width)
    return backend.cast(np_.stack([top, left, rows, cols]), "int32")
