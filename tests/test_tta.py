"""TestTimeAugmentation: the mean of the model's outputs on each view, computed apart."""

import keras
import numpy as np
import pytest

from keras_trainplus import ensemble
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.config import assert_config_roundtrip


class BatchSizes(keras.layers.Layer):
    """Identity layer that records the batch size of every (eager) call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, x):
        self.seen.append(x.shape[0])
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def conv_model(size=6, probe=None):
    layers = [keras.Input((size, size, 3))]
    if probe is not None:
        layers.append(probe)
    layers += [
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(5, activation="softmax"),
    ]
    return keras.Sequential(layers)


# `conv_model()` on 6 x 6 views evaluated apart or in one batch (a 3 x 3 x 3
# convolution, a Dense layer on 4 x 4 x 4 features), then a mean of up to 10 views.
ULPS = tolerance.network_ulps(27, 64) + 10


def numpy_views(images, crop, crops, flips):
    """The views written out with NumPy slicing, in float64."""
    _, height, width, _ = images.shape
    if crops is None:
        windows = [(0, 0)]
    else:
        centre = ((height - crop) // 2, (width - crop) // 2)
        windows = [centre]
        if crops == "five":
            windows = [
                (0, 0),
                (0, width - crop),
                (height - crop, 0),
                (height - crop, width - crop),
                centre,
            ]
    views = []
    for top, left in windows:
        view = images[:, top : top + crop, left : left + crop, :]
        views.append(view)
        if flips:
            views.append(view[:, :, ::-1, :])
    return views


def separate_mean(model, views):
    outputs = [keras.ops.convert_to_numpy(model(v.astype("float32"))) for v in views]
    return np.mean(np.asarray(outputs, np.float64), axis=0)


@pytest.mark.smoke
@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
@pytest.mark.parametrize(
    "crops,flips,image",
    [("five", True, 9), ("five", False, 8), ("center", True, 9), (None, True, 6)],
)
def test_output_is_mean_over_views(rng, mode, compile_kwargs, crops, flips, image):
    model = conv_model()
    images = rng.uniform(size=(3, image, image, 3))
    tta = ensemble.TestTimeAugmentation(model, flips=flips, crops=crops)
    tta.compile(**compile_kwargs)
    views = numpy_views(images, 6, crops, flips)
    assert tta.num_views == len(views)
    got = tta.predict(images.astype("float32"), verbose=0)
    tolerance.assert_close(got, separate_mean(model, views), ULPS)
    # Averaging outputs is not the output of an average view (the test can fail):
    # that one is further away than the bound.
    of_mean_view = model(np.mean(views, axis=0).astype("float32"))
    distance = np.abs(got - keras.ops.convert_to_numpy(of_mean_view)).max()
    assert distance > tolerance.float32_bound(ULPS, got)


def test_scales_resize_before_cropping(rng):
    # Halving with bilinear interpolation at half-pixel centres (no antialiasing)
    # averages 2x2 blocks, which NumPy computes exactly.
    model = conv_model()
    images = rng.uniform(size=(2, 12, 12, 3))
    halved = images.reshape(2, 6, 2, 6, 2, 3).mean(axis=(2, 4))
    tta = ensemble.TestTimeAugmentation(
        model, flips=True, crops="center", scales=(1.0, 0.5)
    )
    views = numpy_views(images, 6, "center", True) + numpy_views(
        halved, 6, "center", True
    )
    assert tta.num_views == 4
    # + the float32 resize (a 2 x 2 mean: 2 roundings at the images' scale 1).
    tolerance.assert_close(
        tta.predict(images.astype("float32"), verbose=0),
        separate_mean(model, views),
        ULPS + 2,
    )


def test_one_forward_pass_for_all_views(rng):
    probe = BatchSizes()
    tta = ensemble.TestTimeAugmentation(
        conv_model(probe=probe), flips=True, crops="five"
    )
    tta(rng.uniform(size=(4, 8, 8, 3)).astype("float32"))
    assert [size for size in probe.seen if size is not None] == [4 * 10]


def test_save_load_roundtrip(tmp_path, rng):
    images = rng.uniform(size=(2, 8, 8, 3)).astype("float32")
    tta = ensemble.TestTimeAugmentation(
        conv_model(), flips=False, crops="five", scales=[1.0]
    )
    expected = keras.ops.convert_to_numpy(tta(images))
    path = str(tmp_path / "tta.keras")
    tta.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ensemble.TestTimeAugmentation) and loaded.crops == "five"
    tolerance.assert_close(loaded.predict(images, verbose=0), expected, ULPS)


def test_config_roundtrip():
    assert_config_roundtrip(
        ensemble.TestTimeAugmentation(
            conv_model(), flips=False, crops="center", scales=(1.0, 1.5)
        )
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"crops": "ten"},
            r"Argument `crops` must be one of None, 'center', 'five'. Received: crops='ten'",
        ),
        ({"flips": 1}, r"Argument `flips` must be a bool. Received: flips=1"),
        ({"scales": ()}, r"Argument `scales` must be a non-empty sequence"),
        (
            {"scales": (1.0, 0.0)},
            r"Argument `scales` must be > 0.0. Received: scales=0.0",
        ),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ensemble.TestTimeAugmentation(conv_model(), **kwargs)


def test_invalid_models_and_images(rng):
    dense = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="one image input of shape"):
        ensemble.TestTimeAugmentation(dense)
    flexible = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D()]
    )
    with pytest.raises(ValueError, match="fixed input height and width"):
        ensemble.TestTimeAugmentation(flexible)
    tta = ensemble.TestTimeAugmentation(conv_model(), crops="five")
    with pytest.raises(
        ValueError,
        match="views of size 5x5 must be at least the model's input size 6x6",
    ):
        tta(np.zeros((1, 5, 5, 3), "float32"))
    whole = ensemble.TestTimeAugmentation(conv_model(), crops=None)
    with pytest.raises(
        ValueError,
        match="views of size 8x8 must be equal to the model's input size 6x6",
    ):
        whole(np.zeros((1, 8, 8, 3), "float32"))
