"""RandomAffine against scipy/skimage with the same matrix, and Keras's conventions."""

import keras
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import skimage.transform

from keras_trainplus.layers import RandomAffine
from tests.helpers import augmentation as contract
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes

SCIPY_MODES = {
    "reflect": "reflect",
    "wrap": "grid-wrap",
    "nearest": "nearest",
    "constant": "grid-constant",
}


def astronaut(height=96, width=128):
    image = skimage.transform.resize(
        skimage.data.astronaut(), (height, width), anti_aliasing=True
    )
    return image.astype("float32")


def transformation(angle, tx, ty, zoom, stretch, shear_x, shear_y):
    return {
        "angle": np.array([angle], "float32"),
        "translation": np.array([[tx, ty]], "float32"),
        "zoom": np.array([zoom], "float32"),
        "stretch": np.array([stretch], "float32"),
        "shear": np.array([[shear_x, shear_y]], "float32"),
    }


def reference_matrix(height, width, angle, tx, ty, zoom, stretch, shear_x, shear_y):
    """The docstring's g(p) = A (p - c - t) + c as a 3x3 (x, y, 1) matrix, float64."""
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    shear = np.array([[1.0, shear_x], [shear_y, 1.0]])
    scale = np.diag([(1 + zoom) * (1 + stretch), 1 + zoom])
    a = rotation @ shear @ scale
    c = np.array([(width - 1) / 2, (height - 1) / 2])
    t = np.array([tx * width, ty * height])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = a, c - a @ (c + t)
    return m


def apply(layer, image, params):
    out = layer.transform_images(
        keras.ops.convert_to_tensor(image[None]), transformation(*params)
    )
    return contract.to_numpy(out)[0]


PARAMS = (0.3, 0.05, -0.1, 0.1, -0.1, 0.1, 0.05)


@pytest.mark.parametrize("fill_mode", sorted(SCIPY_MODES))
def test_matches_scipy_affine_transform(fill_mode):
    image = astronaut()
    layer = RandomAffine(fill_mode=fill_mode, fill_value=0.5)
    out = apply(layer, image, PARAMS)
    m = reference_matrix(96, 128, *PARAMS)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # scipy works on (row, col)
    m = swap @ m @ swap
    reference = np.stack(
        [
            ndi.affine_transform(
                image[..., k].astype(np.float64),
                m,
                order=1,
                mode=SCIPY_MODES[fill_mode],
                cval=0.5,
            )
            for k in range(3)
        ],
        axis=-1,
    )
    # Float32 rounding only, inside and across the border (each fill mode is
    # scipy's): the map's coordinates up to the largest it reaches, the read.
    ys, xs = np.mgrid[0:96, 0:128]
    points = m @ np.stack([ys.ravel(), xs.ravel(), np.ones(ys.size)])
    ulps = tolerance.sampling_ulps(np.abs(points[:2]).max())
    tolerance.assert_close(out, reference, ulps, scale=image)


def test_matches_skimage_warp_nearest():
    image = skimage.transform.resize(skimage.data.camera(), (96, 96))[..., None]
    params = (-0.5, 0.0, 0.08, -0.15, 0.2, 0.0, 0.1)
    layer = RandomAffine(fill_mode="reflect", interpolation="nearest")
    out = apply(layer, image.astype("float32"), params)[..., 0]
    m = reference_matrix(96, 96, *params)
    reference = skimage.transform.warp(
        image[..., 0],
        skimage.transform.AffineTransform(matrix=m),
        order=0,
        mode="symmetric",
    )
    # Nearest reads may round a coordinate at .5 differently: allow a few pixels.
    same = np.abs(out - reference) <= tolerance.float32_bound(1, image)
    assert np.mean(same) > 0.99


def test_zero_transformation_is_exact_identity():
    image = astronaut(24, 32)
    out = apply(RandomAffine(), image, (0.0,) * 7)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ({"rotation": (0.07, 0.07)}, keras.layers.RandomRotation((0.07, 0.07))),
        (
            {"translation": (0.1, 0.1)},
            keras.layers.RandomTranslation((0.1, 0.1), (0.1, 0.1)),
        ),
        ({"zoom": (0.2, 0.2)}, keras.layers.RandomZoom((0.2, 0.2))),
        ({"zoom": (-0.25, -0.25)}, keras.layers.RandomZoom((-0.25, -0.25))),
    ],
    ids=["rotation", "translation", "zoom_out", "zoom_in"],
)
def test_factor_conventions_match_keras_layers(ours, theirs):
    image = astronaut(48, 64)[None]
    out = contract.to_numpy(RandomAffine(**ours, seed=0)(image))
    expected = contract.to_numpy(theirs(image, training=True))
    assert contract.psnr(out[:, 4:-4, 4:-4], expected[:, 4:-4, 4:-4]) > 45


def test_draws_cover_the_ranges_uniformly():
    layer = RandomAffine(
        rotation=(-0.1, 0.05),
        translation=0.2,
        zoom=(0.1, 0.3),
        stretch=0.1,
        shear=(0.0, 0.2),
        seed=4,
    )
    draws = {
        k: contract.to_numpy(v) for k, v in layer.random_parameters(4000, 8, 8).items()
    }
    checks = [
        (draws["angle"] / (2 * np.pi), -0.1, 0.05),
        (draws["translation"].ravel(), -0.2, 0.2),
        (draws["zoom"], 0.1, 0.3),
        (draws["stretch"], -0.1, 0.1),
        (draws["shear"].ravel(), 0.0, 0.2),
    ]
    for values, low, high in checks:
        slack = tolerance.float32_bound(4, [low, high])  # low + (high - low) u
        assert values.min() >= low - slack and values.max() <= high + slack
        np.testing.assert_allclose(
            np.mean(values), (low + high) / 2, atol=0.01 * (high - low) + 1e-3
        )
        np.testing.assert_allclose(
            np.std(values), (high - low) / np.sqrt(12), rtol=0.05
        )


def make(**kwargs):
    return RandomAffine(0.1, 0.1, 0.1, 0.1, 0.1, seed=7, **kwargs)


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
            {"rotation": (0.2, 0.1)},
            r"`rotation` must be a \(min, max\) pair .* rotation=\(0.2, 0.1\)",
        ),
        (
            {"translation": 1.5},
            r"`translation` must .* both in \[-1.0, 1.0\]. Received: translation=\(-1.5, 1.5\)",
        ),
        (
            {"zoom": (-1.0, 0.2)},
            r"`zoom` must .* both > -1.0. Received: zoom=\(-1.0, 0.2\)",
        ),
        (
            {"stretch": "wide"},
            r"`stretch` must be a \(min, max\) pair .* both > -1.0. Received: stretch='wide'",
        ),
        ({"shear": (0.1, 2.0)}, r"`shear` must .* Received: shear=\(0.1, 2.0\)"),
        (
            {"fill_mode": "mirror"},
            r"`fill_mode` must be one of 'reflect', 'wrap', 'constant', 'nearest'. Received: fill_mode='mirror'",
        ),
        (
            {"interpolation": "bicubic"},
            r"`interpolation` must be one of 'bilinear', 'nearest'",
        ),
        ({"fill_value": float("nan")}, r"`fill_value` must be a finite number"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomAffine(**kwargs)


@pytest.mark.smoke
def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"RandomAffine expects images of rank 4"):
        RandomAffine(0.1)(np.zeros((16, 20), "float32"))
