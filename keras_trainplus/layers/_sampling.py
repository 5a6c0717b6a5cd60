"""The sampling core shared by the geometric augmentation layers.

Every geometric layer describes its transformation as a map from output pixel
coordinates to input pixel coordinates (`GeometricAugmentation.source_coordinates`);
`sample` then reads the input there, once, with bilinear or nearest interpolation and
a fill mode for points outside the image. Axis-aligned maps (crops and resizes, where
each output row reads the same input rows and each output column the same input
columns) are read by `sample_separable` with the same interpolation and fill rules,
one axis at a time: it gathers whole rows and columns instead of single pixels, which
is several times faster on TensorFlow's CPU kernels.

Coordinates are pixel indices: the centre of pixel `(i, j)` (row, column) is the
point `(y, x) = (i, j)`, as in `scipy.ndimage` and `keras.ops.image.affine_transform`.
"""

from keras_trainplus import _validation

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def check_fill_mode(fill_mode):
    return _validation.check_choice("fill_mode", fill_mode, FILL_MODES)


def check_interpolation(interpolation):
    return _validation.check_choice("interpolation", interpolation, INTERPOLATIONS)


def per_sample(ops, values, rank=3):
    """Reshapes per-sample values `(batch,)` to broadcast over rank-`rank` arrays."""
    return ops.numpy.reshape(values, (-1,) + (1,) * (rank - 1))


def output_grid(ops, batch, height, width, dtype="float32"):
    """Pixel-centre coordinates `(ys, xs)`, each of shape `(batch, height, width)`."""
    rows = ops.numpy.arange(height, dtype=dtype)
    cols = ops.numpy.arange(width, dtype=dtype)
    ys = ops.numpy.broadcast_to(rows[None, :, None], (batch, height, width))
    xs = ops.numpy.broadcast_to(cols[None, None, :], (batch, height, width))
    return ys, xs


def apply_affine(ops, matrices, ys, xs):
    """Maps `(ys, xs)` by per-sample `(batch, 2, 3)` matrices acting on `(x, y, 1)`."""
    m = [[per_sample(ops, matrices[:, r, c]) for c in range(3)] for r in range(2)]
    new_xs = m[0][0] * xs + m[0][1] * ys + m[0][2]
    new_ys = m[1][0] * xs + m[1][1] * ys + m[1][2]
    return new_ys, new_xs


def fold(ops, index, size, fill_mode):
    """Brings integer pixel indices back into `[0, size)` by the fill mode.

    Returns `(index, valid)`; `valid` is `None` unless `fill_mode == "constant"`, where
    it marks the indices that were inside the image.

    - `"reflect"`: `(d c b a | a b c d | d c b a)`, reflection about the edge of the
      last pixel (scipy's `"reflect"`);
    - `"wrap"`: `(a b c d | a b c d | a b c d)` (scipy's `"grid-wrap"`);
    - `"nearest"`: `(a a a a | a b c d | d d d d)`;
    - `"constant"`: `(k k k k | a b c d | k k k k)` with `k = fill_value` (scipy's
      `"grid-constant"`: bilinear weights blend towards `k` across the border).
    """
    last = size - 1
    if fill_mode == "reflect":
        period = ops.numpy.mod(index, 2 * size)
        return ops.numpy.where(period < size, period, 2 * size - 1 - period), None
    if fill_mode == "wrap":
        return ops.numpy.mod(index, size), None
    clipped = ops.numpy.clip(index, 0, last)
    if fill_mode == "nearest":
        return clipped, None
    return clipped, ops.numpy.equal(clipped, index)


def sample(
    ops,
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
        ops: the layer's backend namespace (`self.backend`).
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
    shape = ops.core.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    dtype = images.dtype
    flat = ops.numpy.reshape(images, (-1, channels))
    offsets = ops.numpy.arange(batch, dtype="int32") * (height * width)
    offsets = per_sample(ops, offsets)
    fill = ops.core.convert_to_tensor(fill_value, dtype=dtype)

    def gather(rows, cols):
        rows, row_ok = fold(ops, rows, height, fill_mode)
        cols, col_ok = fold(ops, cols, width, fill_mode)
        values = ops.numpy.take(flat, offsets + rows * width + cols, axis=0)
        if row_ok is None:
            return values
        return ops.numpy.where((row_ok & col_ok)[..., None], values, fill)

    if interpolation == "nearest":
        rows = ops.cast(ops.numpy.floor(ys + 0.5), "int32")
        cols = ops.cast(ops.numpy.floor(xs + 0.5), "int32")
        out = gather(rows, cols)
    else:
        y0 = ops.numpy.floor(ys)
        x0 = ops.numpy.floor(xs)
        wy = (ys - y0)[..., None]
        wx = (xs - x0)[..., None]
        r0 = ops.cast(y0, "int32")
        c0 = ops.cast(x0, "int32")
        top_left, top_right = gather(r0, c0), gather(r0, c0 + 1)
        bottom_left, bottom_right = gather(r0 + 1, c0), gather(r0 + 1, c0 + 1)
        top = top_left + wx * (top_right - top_left)
        bottom = bottom_left + wx * (bottom_right - bottom_left)
        out = top + wy * (bottom - top)
    if valid is not None:
        out = ops.numpy.where(valid[..., None], out, fill)
    return out


def sample_separable(
    ops, images, ys, xs, interpolation="bilinear", fill_mode="nearest", fill_value=0.0
):
    """`sample` for axis-aligned maps: output `(i, j)` reads input `(ys[i], xs[j])`.

    Args:
        ops: the layer's backend namespace (`self.backend`).
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
    shape = ops.core.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    out_height, out_width = ops.core.shape(ys)[1], ops.core.shape(xs)[1]
    fill = ops.core.convert_to_tensor(fill_value, dtype=images.dtype)

    def read_axis(table, coords, size):
        """Interpolates rows of `table` (`batch * size` rows) at `coords`."""
        offsets = ops.numpy.arange(batch, dtype="int32")[:, None] * size

        def read(index):
            index, valid = fold(ops, index, size, fill_mode)
            values = ops.numpy.take(table, offsets + index, axis=0)
            if valid is None:
                return values
            return ops.numpy.where(valid[..., None], values, fill)

        if interpolation == "nearest":
            return read(ops.cast(ops.numpy.floor(coords + 0.5), "int32"))
        lower = ops.numpy.floor(coords)
        weight = (coords - lower)[..., None]
        index = ops.cast(lower, "int32")
        first = read(index)
        return first + weight * (read(index + 1) - first)

    rows = read_axis(
        ops.numpy.reshape(images, (batch * height, width * channels)), ys, height
    )
    rows = ops.numpy.reshape(rows, (batch, out_height, width, channels))
    columns = ops.numpy.reshape(
        ops.numpy.transpose(rows, (0, 2, 1, 3)),
        (batch * width, out_height * channels),
    )
    out = read_axis(columns, xs, width)
    out = ops.numpy.reshape(out, (batch, out_width, out_height, channels))
    return ops.numpy.transpose(out, (0, 2, 1, 3))
