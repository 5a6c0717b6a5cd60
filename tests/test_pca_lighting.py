"""PCALighting against float64 NumPy references on scikit-image's sample images."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from skimage import data as skdata

from keras_trainplus.layers import PCALighting
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.config import assert_config_roundtrip

EIGVAL = np.array([0.2175, 0.0188, 0.0045])
EIGVEC = np.array(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)


def _samples():
    """Two real RGB photographs, 32 x 32, uint8."""
    return np.stack([skdata.astronaut()[::16, ::16], skdata.coffee()[:384:12, :384:12]])


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.mark.smoke
def test_adds_eigvecs_times_alpha_eigvals_per_image():
    images = _samples()
    alpha = np.array([[0.1, -0.2, 0.05], [-0.15, 0.3, -0.25]])
    expected_offsets = np.stack([EIGVEC @ (a * EIGVAL) for a in alpha])

    layer = PCALighting(value_range=(0, 255))
    out = layer.transform_images(
        keras.ops.convert_to_tensor(images, "float32"),
        {"alpha": keras.ops.convert_to_tensor(alpha, "float32")},
    )
    expected = images + 255.0 * expected_offsets[:, None, None, :]
    # The offset's float32 roundings (alpha, eigenvalues and eigenvectors read as
    # float32, the products, a 3-term dot, the value-range product: ~8 units at the
    # offsets' scale, which is below the images'), then the sum with the pixel: a
    # few units at the scale of the images.
    tolerance.assert_close(_np(out), expected, 8, scale=images)

    unit = PCALighting(value_range=(0, 1))
    out = unit.transform_images(
        keras.ops.convert_to_tensor(images / 255.0, "float32"),
        {"alpha": keras.ops.convert_to_tensor(alpha, "float32")},
    )
    tolerance.assert_close(_np(out), expected / 255.0, 8 + 1, scale=1.0)  # + 1 / 255


@pytest.mark.smoke
def test_random_offsets_are_per_image_and_normal():
    # 1500 uniform grey 2 x 2 images: every pixel of an image shifts by one RGB offset
    # V (alpha * lambda); solving for alpha must give N(0, std^2) coefficients.
    std = 0.3
    images = np.full((1500, 2, 2, 3), 0.5, "float32")
    layer = PCALighting(std=std, value_range=(0, 1), seed=4)
    offsets = _np(layer(images)) - 0.5
    # The same offset added to the same 0.5 in every pixel: the same rounding.
    same = offsets[:, :1, :1, :].repeat(2, 1).repeat(2, 2)
    tolerance.assert_close(offsets, same, 1, scale=1.0)
    alpha = (offsets[:, 0, 0, :] @ EIGVEC) / EIGVAL  # V is orthogonal: V^-1 = V^T
    for component in alpha.T:
        assert scipy.stats.kstest(component, "norm", args=(0, std)).pvalue > 0.01
    assert abs(np.corrcoef(alpha.T)[0, 1]) < 0.1


def test_channels_first_and_unbatched_match_channels_last():
    images = _samples().astype("float32")
    alpha = keras.ops.convert_to_tensor([[0.2, 0.1, -0.3], [0.0, -0.2, 0.1]])
    last = _np(PCALighting().transform_images(images, {"alpha": alpha}))
    first = PCALighting(data_format="channels_first", seed=3)
    out = _np(first(np.transpose(images, (0, 3, 1, 2))))
    assert out.shape == (2, 3, 32, 32)
    shift = out - np.transpose(images, (0, 3, 1, 2))
    # One offset per image and channel, up to each sum's rounding at the pixel scale.
    spread = np.ptp(shift.reshape(2, 3, -1), axis=-1).max()
    assert spread <= tolerance.float32_bound(2, images)
    assert np.abs(shift).max() > 0 and np.abs(last - images).max() > 0
    assert PCALighting(seed=3)(images[0]).shape == (32, 32, 3)


@pytest.mark.smoke
def test_identity_at_inference():
    images = _samples()
    out = PCALighting(seed=0)(images, training=False)
    np.testing.assert_array_equal(_np(out), images.astype(np.float64))


def _covariance_eigh(images):
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    values, vectors = np.linalg.eigh(np.cov(pixels.T))
    return values[::-1], vectors[:, ::-1]


def _assert_eigen_pairs_close(layer, images, values, vectors):
    """adapt()'s float64 eigen-pairs against `_covariance_eigh`'s, within float64
    rounding. Each covariance entry sums n pixel products (pixels in [0, 1]) and
    cancels n m m^T: either covariance is within n EPS64 of the largest E[x_i x_j]
    (`s`) per entry, so they differ by 2 n EPS64 s per entry, 6 n EPS64 s in norm
    (3 x 3), plus a few units for `eigh`. Weyl's theorem bounds the eigenvalues by
    that norm, Davis-Kahan each unit eigenvector (defined up to sign) by twice it
    over its eigenvalue's distance to the others. Independent of summation order,
    so of the BLAS kernel a CPU picks."""
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    s = np.max(pixels.T @ pixels) / len(pixels)
    norm = (6 * len(pixels) + 10) * np.finfo(np.float64).eps * s
    tolerance.assert_within(layer.eigenvalues, values, norm, "eigenvalues")
    got = np.array(layer.eigenvectors)
    got = got * np.sign(np.sum(got * vectors, axis=0))
    gaps = [np.min(np.abs(np.delete(values, i) - v)) for i, v in enumerate(values)]
    bound = 2 * norm / np.array(gaps) + 10 * np.finfo(np.float64).eps
    tolerance.assert_within(got, vectors, bound, "eigenvectors")


def test_adapt_matches_numpy_eigh_on_arrays_and_datasets():
    images = np.concatenate([_samples(), skdata.chelsea()[None, :256:8, :256:8]])
    values, vectors = _covariance_eigh(images)

    layer = PCALighting()
    layer.adapt(images)
    _assert_eigen_pairs_close(layer, images, values, vectors)

    labels = np.zeros(len(images), "int32")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    from_ds = PCALighting()
    from_ds.adapt(ds)
    _assert_eigen_pairs_close(from_ds, images, values, vectors)

    first = PCALighting(data_format="channels_first", value_range=(0, 1))
    first.adapt(np.transpose(images, (0, 3, 1, 2)) / 255.0)
    _assert_eigen_pairs_close(first, images, values, vectors)

    # The adapted values are the ones applied.
    alpha = np.array([[0.5, -1.0, 2.0]])
    out = layer.transform_images(
        keras.ops.zeros((1, 1, 1, 3)), {"alpha": keras.ops.convert_to_tensor(alpha)}
    )
    # Eigen-pairs and alpha read as float32, products and a 3-term dot: 8 units at
    # the scale of the dot's terms.
    tolerance.assert_close(
        _np(out)[0, 0, 0],
        255 * vectors @ (alpha[0] * values),
        8,
        scale=255 * np.abs(vectors) @ np.abs(alpha[0] * values),
    )


@pytest.mark.smoke
def test_runs_in_tf_data_and_same_seed_same_outputs():
    images = _samples()

    def run():
        layer = PCALighting(seed=7)
        ds = tf.data.Dataset.from_tensor_slices(images).batch(1).repeat(2).map(layer)
        return np.stack([b.numpy() for b in ds])

    first, second = run(), run()
    np.testing.assert_array_equal(first, second)
    assert first.shape == (4, 1, 32, 32, 3)
    assert not np.allclose(first[0], first[2])


@pytest.mark.parametrize("mode, compile_kwargs", compile_modes())
def test_inside_a_compiled_model_and_saved(mode, compile_kwargs, tmp_path):
    layer = PCALighting(seed=5)
    layer.adapt(_samples())
    inputs = keras.Input((8, 8, 3))
    x = layer(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse", **compile_kwargs)
    images = np.full((4, 8, 8, 3), 0.5, "float32")
    model.fit(images, np.zeros((4, 1)), epochs=1, batch_size=2, verbose=0)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    # Python floats through the saved config: exact.
    assert loaded.layers[1].eigenvalues == layer.eigenvalues
    # Identity at inference, an exact mean of equal pixels, then the Dense layer's
    # 3-term dot and bias (4 roundings) on each side, at the scale of its terms.
    kernel, bias = model.layers[-1].get_weights()
    tolerance.assert_close(
        model.predict(images, verbose=0),
        loaded.predict(images, verbose=0),
        8,
        scale=0.5 * np.abs(kernel).sum() + np.abs(bias),
    )


def test_config_roundtrip_keeps_adapted_components():
    layer = PCALighting(std=0.2, value_range=(0, 1), seed=3)
    layer.adapt(_samples() / 255.0)
    restored = assert_config_roundtrip(layer)
    assert restored.eigenvectors == layer.eigenvectors  # Python floats: exact


@pytest.mark.smoke
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"std": -0.1}, r"Argument `std` must be >= 0.0. Received: std=-0.1"),
        ({"eigenvalues": [1, 2]}, r"Argument `eigenvalues` must be finite numbers of "),
        ({"eigenvalues": [1, -2, 3]}, r"`eigenvalues` must hold 3 numbers >= 0"),
        ({"eigenvectors": np.eye(2)}, r"Argument `eigenvectors` must be .*\(3, 3\)"),
        ({"value_range": (255, 0)}, r"Argument `value_range` must be a \(min, max\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PCALighting(**kwargs)


@pytest.mark.smoke
def test_non_rgb_inputs_are_rejected():
    grey = np.zeros((2, 8, 8, 1), "float32")
    message = r"3 channels. Received: inputs.shape=\(2, 8, 8, 1\)"
    with pytest.raises(ValueError, match=message):
        PCALighting()(grey)
    with pytest.raises(ValueError, match=message):
        PCALighting().adapt(grey)
    with pytest.raises(ValueError, match=r"rank 4 .* Received: inputs.shape=\(8, 3\)"):
        PCALighting()(np.zeros((8, 3), "float32"))
