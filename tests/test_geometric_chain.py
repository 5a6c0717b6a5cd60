"""GeometricChain: consecutive geometric layers read the input once."""

import keras
import numpy as np
import pytest
import scipy.ndimage as ndi

from keras_trainplus.layers import GeometricChain
from keras_trainplus.layers import RandomAffine
from keras_trainplus.layers import RandomLensDistortion
from keras_trainplus.layers import RandomResizedCrop
from keras_trainplus.layers import RandomScaleCrop
from tests.helpers import augmentation as contract
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.test_random_affine import astronaut
from tests.test_random_affine import reference_matrix
from tests.test_random_affine import transformation

FIRST = (0.2, 0.05, -0.05, 0.1, 0.0, 0.05, 0.0)
SECOND = (-0.4, -0.08, 0.04, -0.1, 0.1, 0.0, 0.1)


def test_two_affines_read_the_input_once_through_the_product_matrix():
    image = astronaut()
    chain = GeometricChain([RandomAffine(), RandomAffine()])
    params = {"layers": [transformation(*FIRST), transformation(*SECOND)]}
    out = contract.to_numpy(
        chain.transform_images(keras.ops.convert_to_tensor(image[None]), params)
    )[0]
    # The chain's pixel p reads g_1(g_2(p)): the matrix product M_1 M_2.
    m = reference_matrix(96, 128, *FIRST) @ reference_matrix(96, 128, *SECOND)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    m = swap @ m @ swap
    reference = np.stack(
        [
            ndi.affine_transform(
                image[..., k].astype(np.float64), m, order=1, mode="reflect"
            )
            for k in range(3)
        ],
        axis=-1,
    )
    # Where g_2(p) leaves the image, the chain folds it back first (reflect), which
    # the product matrix does not: compare where g_2(p) stays inside.
    ys, xs = np.mgrid[0:96, 0:128]
    inner = reference_matrix(96, 128, *SECOND) @ np.stack(
        [xs, ys, np.ones_like(xs)]
    ).reshape(3, -1)
    inside = (
        (inner[0] >= 0) & (inner[0] <= 127) & (inner[1] >= 0) & (inner[1] <= 95)
    ).reshape(96, 128)
    assert inside.mean() > 0.7
    # Float32 rounding only. g_2's coordinates carry its roundings, which g_1 carries
    # on, times its matrix norm, besides its own: `sampling_ulps` of (1 + |A_1|) times
    # the largest coordinate either map reaches, and the bilinear read.
    first = reference_matrix(96, 128, *FIRST)
    largest = max(np.abs(inner[:2]).max(), np.abs((first @ inner)[:2]).max())
    ulps = tolerance.sampling_ulps((1 + np.linalg.norm(first[:2, :2], 2)) * largest)
    tolerance.assert_close(out[inside], reference[inside], ulps, scale=image)


def test_fused_crop_affine_and_lens_match_the_unfused_chain():
    # A smooth image, so that the unfused chain's extra interpolations blur little.
    image = ndi.gaussian_filter(astronaut(), sigma=(2, 2, 0))[None]
    layers = lambda: [  # noqa: E731
        RandomResizedCrop(64, 64, scale=(0.5, 1.0), seed=1),
        RandomAffine(rotation=0.05, zoom=0.1, seed=2),
        RandomLensDistortion(k1=(-0.1, 0.1), seed=3),
    ]
    fused = contract.to_numpy(GeometricChain(layers())(image))
    unfused = image
    for layer in layers():
        unfused = layer(unfused)
    unfused = contract.to_numpy(unfused)
    assert fused.shape == unfused.shape == (1, 64, 64, 3)
    # Same draws, same maps; the unfused chain interpolates three times.
    assert contract.psnr(fused[:, 6:-6, 6:-6], unfused[:, 6:-6, 6:-6]) > 40


def test_constant_fill_of_a_later_layer_wins():
    image = np.ones((1, 16, 16, 1), "float32")
    chain = GeometricChain(
        [
            RandomAffine(fill_mode="constant", fill_value=3.0),
            RandomAffine(fill_mode="constant", fill_value=5.0),
        ]
    )
    shift = transformation(0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0)  # half the width
    out = contract.to_numpy(
        chain.transform_images(
            keras.ops.convert_to_tensor(image),
            {"layers": [transformation(*(0.0,) * 7), shift]},
        )
    )[0, ..., 0]
    np.testing.assert_array_equal(out[:, :7], 5.0)
    np.testing.assert_array_equal(out[:, 9:], 1.0)


def make(**kwargs):
    return GeometricChain(
        [RandomScaleCrop(12, 14, (14, 20), seed=4), RandomAffine(0.1, 0.1, seed=5)],
        **kwargs,
    )


IMAGES = np.random.default_rng(1).integers(0, 255, (2, 16, 20, 3)).astype("float32")


@pytest.mark.smoke
def test_formats_seed_and_inference():
    contract.check_formats(make, IMAGES)
    contract.check_same_seed(make, IMAGES)
    expected = RandomScaleCrop(12, 14, (14, 20))(IMAGES, training=False)
    contract.assert_same_resampling(
        contract.to_numpy(make()(IMAGES, training=False)),
        contract.to_numpy(expected),
        IMAGES,
    )
    assert make().compute_output_shape((None, 16, 20, 3)) == (None, 12, 14, 3)


@pytest.mark.smoke
def test_tf_data_with_variable_sizes():
    contract.check_tf_data(
        make,
        IMAGES[[0, 1, 0, 1]],
        (12, 14, 3),
        variable_sizes=[(30, 41, 3), (17, 64, 3)],
    )


@pytest.mark.parametrize("mode, compile_kwargs", compile_modes())
def test_inside_a_compiled_model(mode, compile_kwargs):
    contract.check_compiled_model(make, (16, 20, 3), compile_kwargs)


def test_serialization(tmp_path):
    contract.check_serialization(make, IMAGES, tmp_path)


@pytest.mark.parametrize("layers", [[], [keras.layers.RandomFlip()], "RandomAffine"])
def test_bad_layers(layers):
    with pytest.raises(
        ValueError,
        match=r"Argument `layers` must be a non-empty list of keras_trainplus geometric layers",
    ):
        GeometricChain(layers)
