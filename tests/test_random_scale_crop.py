"""RandomScaleCrop: the short side L is uniform in range; resize + crop vs skimage."""

import keras
import numpy as np
import pytest
import scipy.stats
import skimage.data
import skimage.transform

from keras_trainplus.layers import RandomScaleCrop
from tests.helpers import augmentation as contract
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes


def draws(layer, n, height, width):
    return {
        k: contract.to_numpy(v).astype(np.float64)
        for k, v in layer.random_parameters(n, height, width).items()
    }


def test_short_side_is_uniform_over_the_integers_in_range():
    layer = RandomScaleCrop(224, 224, short_side_range=(256, 480), seed=2)
    sides = draws(layer, 45000, 300, 400)["short_side"]
    values, counts = np.unique(sides, return_counts=True)
    np.testing.assert_array_equal(values, np.arange(256, 481))
    assert scipy.stats.chisquare(counts).pvalue > 0.001


def test_crop_offsets_are_uniform_where_the_crop_fits():
    height, width = 300, 400
    layer = RandomScaleCrop(64, 96, short_side_range=(100, 200), seed=3)
    d = draws(layer, 20000, height, width)
    scaled_h = d["short_side"]  # the short side is the height here
    scaled_w = np.round(width * d["short_side"] / height)
    top, left = d["offsets"][:, 0], d["offsets"][:, 1]
    assert np.all(top >= 0) and np.all(top <= scaled_h - 64)
    assert np.all(left >= 0) and np.all(left <= scaled_w - 96)
    np.testing.assert_array_equal(d["offsets"], np.round(d["offsets"]))
    # Randomised probability integral transform: (k + U[0, 1)) / n is exactly
    # uniform on [0, 1) when the offset k is uniform on {0, ..., n - 1}.
    jitter = np.random.default_rng(0).random((2, len(top)))
    uniform = scipy.stats.uniform(0, 1).cdf
    assert (
        scipy.stats.kstest((top + jitter[0]) / (scaled_h - 63), uniform).pvalue > 0.001
    )
    assert (
        scipy.stats.kstest((left + jitter[1]) / (scaled_w - 95), uniform).pvalue > 0.001
    )


def astronaut(height, width):
    image = skimage.transform.resize(skimage.data.astronaut(), (height, width))
    return image.astype("float32")


def reference(image, short_side, top, left, height, width):
    """Resize the short side to L (long side rounded), then slice the crop."""
    h, w = image.shape[:2]
    factor = short_side / min(h, w)
    scaled = skimage.transform.resize(
        image,
        (round(h * factor), round(w * factor)),
        order=1,
        mode="edge",
        anti_aliasing=False,
    )
    return scaled[top : top + height, left : left + width]


def assert_matches_reference(out, expected, image):
    # Float32 rounding only: the scaled image's coordinates stay within its sides.
    ulps = tolerance.sampling_ulps(max(image.shape))
    tolerance.assert_close(out, expected, ulps, scale=image)


def test_resize_and_crop_in_one_read_match_skimage():
    image = astronaut(90, 120)
    layer = RandomScaleCrop(32, 40, short_side_range=(40, 80))
    transformation = {
        "short_side": np.array([60.0], "float32"),
        "offsets": np.array([[11.0, 29.0]], "float32"),
    }
    out = layer.transform_images(
        keras.ops.convert_to_tensor(image[None]), transformation
    )
    expected = reference(image, 60, 11, 29, 32, 40)
    assert_matches_reference(contract.to_numpy(out)[0], expected, image)


def test_inference_is_the_centre_crop_of_the_smallest_scale():
    image = astronaut(90, 120)
    layer = RandomScaleCrop(32, 40, short_side_range=(48, 80))
    out = contract.to_numpy(layer(image[None], training=False))[0]
    # Short side 48: the image becomes 48 x 64, the centre crop starts at (8, 12).
    assert_matches_reference(out, reference(image, 48, 8, 12, 32, 40), image)


def make(**kwargs):
    return RandomScaleCrop(10, 12, short_side_range=(14, 24), seed=7, **kwargs)


IMAGES = np.random.default_rng(1).integers(0, 255, (2, 16, 20, 3)).astype("float32")


@pytest.mark.smoke
def test_formats_seed_and_shapes():
    contract.check_formats(make, IMAGES)
    contract.check_same_seed(make, IMAGES)
    assert make().compute_output_shape((None, 16, 20, 3)) == (None, 10, 12, 3)
    assert make().compute_output_shape((None, None, 3)) == (10, 12, 3)


@pytest.mark.smoke
def test_tf_data_with_variable_sizes():
    contract.check_tf_data(
        make,
        IMAGES[[0, 1, 0, 1]],
        (10, 12, 3),
        variable_sizes=[(30, 41, 3), (17, 64, 3)],
    )


@pytest.mark.parametrize("mode, compile_kwargs", compile_modes())
def test_inside_a_compiled_model(mode, compile_kwargs):
    contract.check_compiled_model(make, (16, 20, 3), compile_kwargs)


def test_serialization(tmp_path):
    contract.check_serialization(make, IMAGES, tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"height": -3},
            r"Argument `height` must be an integer >= 1. Received: height=-3",
        ),
        (
            {"short_side_range": (200, 480)},
            r"`short_side_range` must be a \(min, max\) pair of integers with max\(height, width\)=224 <= min <= max. Received: short_side_range=\(200, 480\)",
        ),
        (
            {"short_side_range": (300, 256)},
            r"`short_side_range` must be a \(min, max\) pair with min <= max",
        ),
        (
            {"short_side_range": (256.5, 300)},
            r"`short_side_range` must be a \(min, max\) pair of integers",
        ),
        ({"interpolation": "cubic"}, r"`interpolation` must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"height": 224, "width": 224, **kwargs}
    with pytest.raises(ValueError, match=message):
        RandomScaleCrop(**arguments)


@pytest.mark.smoke
def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"RandomScaleCrop expects images of rank 4"):
        RandomScaleCrop(8, 8, (8, 12))(np.zeros((16, 20), "float32"))
