"""RandomLensDistortion: points land where r' = r (1 + k1 r^2 + k2 r^4) says."""

import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform

from keras_trainplus.layers import RandomLensDistortion
from tests.helpers import augmentation as contract
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes


def distortion(k1, k2=0.0, dx=0.0, dy=0.0, batch=1):
    return {
        "k1": np.full((batch,), k1, "float32"),
        "k2": np.full((batch,), k2, "float32"),
        "center": np.tile(np.array([[dx, dy]], "float32"), (batch, 1)),
    }


def apply(layer, images, transformation):
    images = keras.ops.convert_to_tensor(np.asarray(images, "float32"))
    return contract.to_numpy(layer.transform_images(images, transformation))


def geometry(height, width, dx, dy):
    """Distortion centre (x, y) and unit length of the documented convention."""
    centre = np.array(
        [(width - 1) / 2 + dx * width / 2, (height - 1) / 2 + dy * height / 2]
    )
    return centre, np.hypot(height, width) / 2


@pytest.mark.parametrize("k1, k2", [(-0.15, 0.05), (0.2, 0.0), (0.1, -0.05)])
def test_each_output_pixel_reads_the_point_the_formula_sends_there(k1, k2):
    height, width, dx, dy = 48, 64, 0.1, -0.05
    ys, xs = np.mgrid[0:height, 0:width].astype("float32")
    # Bilinear reads of a linear ramp are exact: the output holds the source point
    # (with "nearest" fill, reads beyond the image hold the border and are excluded).
    ramp = np.stack([xs, ys], axis=-1)[None]
    layer = RandomLensDistortion(fill_mode="nearest")
    source = apply(layer, ramp, distortion(k1, k2, dx, dy))[0]
    centre, unit = geometry(height, width, dx, dy)
    out_offset = (np.stack([xs, ys], -1) - centre) / unit
    src_offset = (source.astype(np.float64) - centre) / unit
    inside = (
        (source[..., 0] > 1)
        & (source[..., 0] < width - 2)
        & (source[..., 1] > 1)
        & (source[..., 1] < height - 2)
    )
    assert inside.mean() > 0.6
    r = np.linalg.norm(src_offset, axis=-1)[inside]
    r_out = np.linalg.norm(out_offset, axis=-1)[inside]
    # The source point read back carries the map's float32 error (~4 units of the
    # largest coordinate, read off a ramp of slope 1) and the bilinear read's (~6
    # units at the ramp's scale, the width): 10 units of the width, in pixels. In
    # units of `unit` pixels, times the polynomial's slope (< 2 here) or
    # |out_offset| (< 1.3), it bounds both checks.
    slack = 2 * tolerance.float32_bound(10, width) / unit
    tolerance.assert_within(r * (1 + k1 * r**2 + k2 * r**4), r_out, slack)
    cross = np.cross(out_offset[inside], src_offset[inside])
    tolerance.assert_within(cross, 0.0, slack)


@pytest.mark.parametrize("k1, inward", [(-0.2, True), (0.2, False)])
def test_barrel_pulls_content_in_and_pincushion_pushes_it_out(k1, inward):
    size = 96
    centre, unit = geometry(size, size, 0.0, 0.0)
    point = centre + 0.6 * unit * np.array([np.cos(0.4), np.sin(0.4)])
    ys, xs = np.mgrid[0:size, 0:size]
    blob = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * 1.5**2))
    out = apply(RandomLensDistortion(), blob[None, ..., None], distortion(k1))[
        0, ..., 0
    ]
    found = np.array([np.sum(out * xs), np.sum(out * ys)]) / np.sum(out)
    expected_r = 0.6 * (1 + k1 * 0.36)
    found_r = np.linalg.norm(found - centre) / unit
    # The blob moves by 0.6 * 0.072 * unit = 2.9 px; its centroid lands within 1 px
    # of the moved centre (the warp also reshapes the blob slightly).
    assert abs(found_r - expected_r) * unit < 1.0
    assert (found_r < 0.6) == inward


def test_matches_skimage_warp_with_a_numerically_inverted_map():
    image = skimage.transform.resize(skimage.data.camera(), (96, 96)).astype("float32")
    k1, k2, dx, dy = -0.15, 0.04, 0.1, -0.1
    out = apply(
        RandomLensDistortion(), image[None, ..., None], distortion(k1, k2, dx, dy)
    )
    centre, unit = geometry(96, 96, dx, dy)

    def inverse_map(points):  # (col, row) of output pixels -> input points
        offset = (points - centre) / unit
        rho = np.linalg.norm(offset, axis=-1)
        low, high = np.zeros_like(rho), np.full_like(rho, 2.0)
        for _ in range(
            60
        ):  # bisection on the increasing f(r) = r (1 + k1 r^2 + k2 r^4)
            mid = (low + high) / 2
            below = mid * (1 + k1 * mid**2 + k2 * mid**4) < rho
            low, high = np.where(below, mid, low), np.where(below, high, mid)
        scale = np.where(rho > 0, low / np.maximum(rho, 1e-12), 1.0)
        return centre + offset * scale[:, None] * unit

    reference = skimage.transform.warp(image, inverse_map, order=1, mode="symmetric")
    # The same map (bisection to float64 against Newton's steps, converged to
    # float32: within ~1 unit of the largest coordinate): float32 rounding only.
    largest = np.abs(
        inverse_map(np.stack(np.mgrid[0:96, 0:96][::-1], -1).reshape(-1, 2))
    )
    ulps = tolerance.sampling_ulps(largest.max())
    tolerance.assert_close(out[0, ..., 0], reference, ulps, scale=image)


def test_pixels_no_input_point_reaches_get_the_fill_value():
    # k1 = -0.5: f(r) = r - 0.5 r^3 peaks at r = sqrt(2/3), f = 0.544 < corner radius 1.
    image = np.ones((1, 32, 32, 1), "float32")
    layer = RandomLensDistortion(fill_mode="reflect", fill_value=7.0)
    out = apply(layer, image, distortion(-0.5))[0, ..., 0]
    assert out[0, 0] == 7.0 and out[-1, -1] == 7.0
    # Exact on any CPU: a bilinear read `a + f (b - a)` of equal neighbours is `a`.
    assert out[16, 16] == 1.0


def test_zero_distortion_is_the_identity():
    image = np.random.default_rng(0).random((1, 24, 32, 3)).astype("float32")
    out = apply(RandomLensDistortion(), image, distortion(0.0))
    # Up to rounding: the map goes through normalised coordinates, (x - c) / u * u.
    tolerance.assert_close(out, image, tolerance.sampling_ulps(32), scale=image)


def make(**kwargs):
    return RandomLensDistortion(
        k1=0.3, k2=(-0.05, 0.05), center_jitter=0.1, seed=7, **kwargs
    )


IMAGES = np.random.default_rng(1).integers(0, 255, (2, 16, 20, 3)).astype("float32")


@pytest.mark.smoke
def test_formats_seed_and_inference():
    contract.check_formats(make, IMAGES)
    contract.check_same_seed(make, IMAGES)
    np.testing.assert_array_equal(
        contract.to_numpy(make()(IMAGES, training=False)), IMAGES
    )


@pytest.mark.smoke
def test_tf_data():
    contract.check_tf_data(make, IMAGES[[0, 1, 0, 1]], (16, 20, 3))


@pytest.mark.parametrize("mode, compile_kwargs", compile_modes())
def test_inside_a_compiled_model(mode, compile_kwargs):
    contract.check_compiled_model(make, (16, 20, 3), compile_kwargs)


def test_serialization(tmp_path):
    contract.check_serialization(make, IMAGES, tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"k1": (0.3, -0.3)},
            r"`k1` must be a \(min, max\) pair with min <= max, both in \[-1.0, 1.0\]. Received: k1=\(0.3, -0.3\)",
        ),
        ({"k2": (0.0, 1.5)}, r"`k2` must .* Received: k2=\(0.0, 1.5\)"),
        (
            {"center_jitter": 1.5},
            r"`center_jitter` must be in \[0.0, 1.0\]. Received: center_jitter=1.5",
        ),
        ({"fill_mode": "mirror"}, r"`fill_mode` must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomLensDistortion(**kwargs)


@pytest.mark.smoke
def test_wrong_rank_is_rejected():
    with pytest.raises(
        ValueError, match=r"RandomLensDistortion expects images of rank 4"
    ):
        RandomLensDistortion()(np.zeros((2, 1, 16, 20, 3), "float32"))
