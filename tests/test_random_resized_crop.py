"""RandomResizedCrop: torchvision's crop distribution, exact crops, skimage resizes."""

import math

import keras
import numpy as np
import pytest
import scipy.stats
import skimage.data
import skimage.transform

from keras_trainplus.layers import RandomResizedCrop
from tests.helpers import augmentation as contract
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes


def torchvision_crops(rng, n, height, width, scale, ratio):
    """torchvision's `RandomResizedCrop.get_params`, its loop ported to NumPy."""
    boxes = []
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(n):
        for _ in range(10):
            target_area = height * width * rng.uniform(*scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                boxes.append(
                    (
                        rng.integers(0, height - h + 1),
                        rng.integers(0, width - w + 1),
                        h,
                        w,
                    )
                )
                break
        else:
            in_ratio = width / height
            if in_ratio < min(ratio):
                w, h = width, int(round(width / min(ratio)))
            elif in_ratio > max(ratio):
                h, w = height, int(round(height * max(ratio)))
            else:
                w, h = width, height
            boxes.append(((height - h) // 2, (width - w) // 2, h, w))
    return np.array(boxes, np.float64)


def our_crops(layer, n, height, width):
    boxes = layer.random_parameters(n, height, width)["crop_boxes"]
    return contract.to_numpy(boxes).astype(np.float64)


@pytest.mark.parametrize(
    "height, width, scale, ratio",
    [
        (200, 300, (0.08, 1.0), (3 / 4, 4 / 3)),
        (100, 400, (0.5, 1.0), (0.3, 3.0)),  # many redraws and fallbacks
    ],
)
def test_crop_distribution_matches_torchvision(height, width, scale, ratio):
    layer = RandomResizedCrop(8, 8, scale=scale, ratio=ratio, seed=3)
    ours = our_crops(layer, 50000, height, width)
    rng = np.random.default_rng(0)
    theirs = torchvision_crops(rng, 50000, height, width, scale, ratio)
    for column in (lambda b: b[:, 2] * b[:, 3], lambda b: np.log(b[:, 3] / b[:, 2])):
        assert scipy.stats.ks_2samp(column(ours), column(theirs)).pvalue > 0.001
    assert np.all(ours[:, :2] >= 0)
    assert np.all(ours[:, 0] + ours[:, 2] <= height)
    assert np.all(ours[:, 1] + ours[:, 3] <= width)
    np.testing.assert_array_equal(ours, np.round(ours))


def test_area_uniform_and_ratio_log_uniform_when_every_draw_fits():
    # On a square image a (0.08, 0.5) area with ratio in (3/4, 4/3) always fits.
    layer = RandomResizedCrop(8, 8, scale=(0.08, 0.5), ratio=(3 / 4, 4 / 3), seed=5)
    boxes = our_crops(layer, 20000, 1000, 1000)
    area = boxes[:, 2] * boxes[:, 3] / 1e6
    assert scipy.stats.kstest(area, scipy.stats.uniform(0.08, 0.42).cdf).pvalue > 0.001
    log_ratio = np.log(boxes[:, 3] / boxes[:, 2])
    low, high = math.log(3 / 4), math.log(4 / 3)
    uniform = scipy.stats.uniform(low, high - low).cdf
    assert scipy.stats.kstest(log_ratio, uniform).pvalue > 0.001
    # The position is uniform over the offsets where the crop fits.
    relative = boxes[:, 0] / (1000 - boxes[:, 2])
    assert scipy.stats.kstest(relative, scipy.stats.uniform(0, 1).cdf).pvalue > 0.001


def test_fallback_is_the_centred_crop_with_clamped_ratio():
    layer = RandomResizedCrop(8, 8, scale=(0.9, 1.0), ratio=(2.0, 3.0), seed=1)
    boxes = our_crops(layer, 50, 60, 60)
    np.testing.assert_array_equal(boxes, np.tile([[15, 0, 30, 60]], (50, 1)))


def chelsea(height=120, width=160):
    image = skimage.transform.resize(skimage.data.chelsea(), (height, width))
    return image.astype("float32")


def crop(layer, image, box):
    boxes = np.array([box], "float32")
    out = layer.transform_images(
        keras.ops.convert_to_tensor(image[None]), {"crop_boxes": boxes}
    )
    return contract.to_numpy(out)[0]


@pytest.mark.parametrize(
    "height, width, ratio", [(300, 200, (3 / 4, 4 / 3)), (60, 400, (0.9, 1.1))]
)
def test_compiled_single_image_boxes_equal_the_batched_boxes(height, width, ratio):
    # The per-image path in `tf.data` draws and turns the draws into its box in one
    # XLA-compiled function; boxes (and flips) must equal those of the batched code
    # for the same draws, here 2000, including fallbacks (a thin image and a narrow
    # ratio). Under the other backends the layer reaches this path only inside
    # `tf.data`, where it computes with TensorFlow.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the per-image path computes with TensorFlow")
    import tensorflow as tf

    layer = RandomResizedCrop(8, 8, ratio=ratio, horizontal_flip=True, seed=0)
    reference = RandomResizedCrop(8, 8, ratio=ratio, horizontal_flip=True, seed=0)
    compiled = tf.data.Dataset.range(2000).map(
        lambda _: layer._compiled()["crop"](height, width)[:2]
    )
    boxes, flips = (np.stack(column) for column in zip(*compiled.as_numpy_iterator()))
    draws = np.concatenate(
        [contract.to_numpy(reference.draws_for(1)) for _ in range(2000)]
    )
    expected = reference.parameters_from_draws(draws, height, width)
    np.testing.assert_array_equal(boxes, contract.to_numpy(expected["crop_boxes"]))
    np.testing.assert_array_equal(flips, contract.to_numpy(expected["flips"]))
    # The thin image falls back to its centred 60 x 66 crop (ratio clamped to 1.1).
    fallbacks = np.all(boxes == [0, 167, 60, 66], axis=1).sum()
    assert (0 < fallbacks < len(boxes)) if height == 60 else fallbacks == 0


def test_unscaled_crop_is_an_exact_slice():
    image = chelsea()
    out = crop(RandomResizedCrop(20, 30), image, (5, 7, 20, 30))
    np.testing.assert_array_equal(out, image[5:25, 7:37])


def test_resized_crop_matches_skimage_resize():
    image = chelsea()
    out = crop(RandomResizedCrop(48, 40), image, (10, 20, 80, 100))
    reference = skimage.transform.resize(
        image[10:90, 20:120], (48, 40), order=1, mode="edge", anti_aliasing=False
    )
    # Float32 rounding only (skimage's resize has the same half-pixel centres).
    ulps = tolerance.sampling_ulps(max(image.shape))
    tolerance.assert_close(out, reference, ulps, scale=image)


def test_upscaled_crop_reads_only_the_crop():
    image = chelsea()
    out = crop(RandomResizedCrop(48, 40), image, (30, 40, 20, 25))
    reference = skimage.transform.resize(
        image[30:50, 40:65], (48, 40), order=1, mode="edge", anti_aliasing=False
    )
    # Float32 rounding only (skimage's resize has the same half-pixel centres).
    ulps = tolerance.sampling_ulps(max(image.shape))
    tolerance.assert_close(out, reference, ulps, scale=image)


@pytest.mark.smoke
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_single_image_path_matches_the_batched_path(interpolation, data_format):
    # One image takes TensorFlow's fused resize outside XLA; a batch of one, the
    # gather core. Same seed, same draws: the outputs must agree on a real photo,
    # up to float32 rounding of source coordinates up to 451 px (`sampling_ulps`).
    # Nearest reads pick the same pixels: no source point of these six boxes lies
    # within 0.006 px of a half-integer, and float32 moves one by < 1e-4 px.
    image = skimage.data.chelsea()
    if data_format == "channels_first":
        image = np.transpose(image, (2, 0, 1))
    for seed in range(6):

        def make_layer(seed=seed):
            return RandomResizedCrop(
                56, 72, interpolation=interpolation, data_format=data_format, seed=seed
            )

        single = contract.to_numpy(make_layer()(image))
        batched = contract.to_numpy(make_layer()(image[None]))[0]
        assert single.dtype == np.float32 and single.shape == batched.shape
        contract.assert_same_resampling(single, batched, image, max(image.shape))


@pytest.mark.smoke
def test_horizontal_flip_mirrors_the_same_crops():
    image = skimage.data.chelsea()
    plain = RandomResizedCrop(40, 48, seed=3)
    flipping = RandomResizedCrop(40, 48, horizontal_flip=True, seed=3)
    batch = np.stack([image] * 8)
    expected = contract.to_numpy(plain(batch))
    outputs = [contract.to_numpy(flipping(batch))]
    # Single images (TensorFlow's kernel under TensorFlow), one layer called 8 times:
    # the flip is drawn with the crop, so the crops stay those of the plain layer.
    plain_single = RandomResizedCrop(40, 48, seed=5)
    flipping_single = RandomResizedCrop(40, 48, horizontal_flip=True, seed=5)
    outputs.append(
        np.stack([contract.to_numpy(flipping_single(image)) for _ in range(8)])
    )
    expected_single = np.stack(
        [contract.to_numpy(plain_single(image)) for _ in range(8)]
    )
    # Two float32 resamplings: twice the rounding of one (`assert_same_resampling`).
    ulps = 2 * tolerance.sampling_ulps(max(image.shape))
    atol = tolerance.float32_bound(ulps, image)
    for out, same in zip(outputs, [expected, expected_single]):
        mirrored = [np.allclose(o, e[:, ::-1], 0, atol) for o, e in zip(out, same)]
        kept = [np.allclose(o, e, 0, atol) for o, e in zip(out, same)]
        assert all(m or k for m, k in zip(mirrored, kept))
        assert any(mirrored) and any(kept)
    assert flipping.get_config()["horizontal_flip"] is True


def test_inference_resizes_the_largest_centred_crop():
    image = chelsea(40, 80)
    out = contract.to_numpy(RandomResizedCrop(20, 20)(image[None], training=False))[0]
    reference = skimage.transform.resize(
        image[:, 20:60], (20, 20), order=1, mode="edge", anti_aliasing=False
    )
    # Float32 rounding only (skimage's resize has the same half-pixel centres).
    ulps = tolerance.sampling_ulps(max(image.shape))
    tolerance.assert_close(out, reference, ulps, scale=image)


def make(**kwargs):
    return RandomResizedCrop(12, 14, seed=7, **kwargs)


def make_flipping(**kwargs):
    return RandomResizedCrop(12, 14, horizontal_flip=True, seed=7, **kwargs)


IMAGES = np.random.default_rng(1).integers(0, 255, (2, 16, 20, 3)).astype("float32")


FACTORIES = pytest.mark.parametrize(
    "factory", [make, make_flipping], ids=["crop", "flip"]
)


@pytest.mark.smoke
@FACTORIES
def test_formats_seed_and_shapes(factory):
    contract.check_formats(factory, IMAGES)
    contract.check_same_seed(factory, IMAGES)
    assert make().compute_output_shape((None, 16, 20, 3)) == (None, 12, 14, 3)
    first = make(data_format="channels_first")
    assert first.compute_output_shape((None, 3, 16, 20)) == (None, 3, 12, 14)


@pytest.mark.smoke
@FACTORIES
def test_tf_data_with_variable_sizes(factory):
    contract.check_tf_data(
        factory,
        IMAGES[[0, 1, 0, 1]],
        (12, 14, 3),
        variable_sizes=[(30, 41, 3), (17, 64, 3)],
    )


@pytest.mark.parametrize("mode, compile_kwargs", compile_modes())
@FACTORIES
def test_inside_a_compiled_model(mode, compile_kwargs, factory):
    contract.check_compiled_model(factory, (16, 20, 3), compile_kwargs)


@FACTORIES
def test_serialization(tmp_path, factory):
    contract.check_serialization(factory, IMAGES, tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"height": 0},
            r"Argument `height` must be an integer >= 1. Received: height=0",
        ),
        (
            {"width": 2.5},
            r"Argument `width` must be an integer >= 1. Received: width=2.5",
        ),
        (
            {"scale": (0, 1)},
            r"`scale` must be a \(min, max\) pair with min <= max, both in \(0.0, 1.0\]. Received: scale=\(0, 1\)",
        ),
        ({"scale": (0.5, 0.2)}, r"`scale` must .* Received: scale=\(0.5, 0.2\)"),
        (
            {"ratio": (-1.0, 2.0)},
            r"`ratio` must .* both > 0.0. Received: ratio=\(-1.0, 2.0\)",
        ),
        ({"interpolation": "area"}, r"`interpolation` must be one of"),
        (
            {"horizontal_flip": "yes"},
            r"Argument `horizontal_flip` must be a bool. Received: horizontal_flip='yes'",
        ),
        (
            {"horizontal_flip": 1},
            r"Argument `horizontal_flip` must be a bool. Received: horizontal_flip=1",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"height": 8, "width": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        RandomResizedCrop(**arguments)


@pytest.mark.smoke
def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match=r"RandomResizedCrop expects images of rank 4"):
        RandomResizedCrop(8, 8)(np.zeros((16, 20), "float32"))


@pytest.mark.smoke
def test_float64_floatx_keeps_float32_draws():
    # The draws are float32 whatever `floatx` is (the compiled per-image box function
    # takes float32 draws); the output follows the layer's compute dtype.
    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        layer = RandomResizedCrop(16, 16, horizontal_flip=True, seed=0)
        image = skimage.data.chelsea()[:40, :50]
        single = contract.to_numpy(layer(image))
        batched = contract.to_numpy(layer(image[None]))
    finally:
        keras.config.set_floatx(floatx)
    assert single.dtype == batched.dtype == np.dtype(layer.compute_dtype)
    assert single.shape == batched.shape[1:] == (16, 16, 3)
