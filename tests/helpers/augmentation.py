"""The contract every image augmentation layer meets, as reusable checks.

Each check takes a factory `make(**kwargs)` returning a fresh layer with a fixed seed
(extra keyword arguments such as `data_format` are passed through), so that two
layers built by it draw the same random numbers.
"""

import json

import keras
import numpy as np
import tensorflow as tf

from tests.helpers import tolerance
from tests.helpers.config import assert_config_roundtrip


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def assert_same_resampling(actual, desired, images, max_coordinate=None):
    """Two float32 bilinear resamplings of `images` with the same draws agree.

    Their source coordinates and interpolation may round differently (layout, batch
    size, fusion, kernels), never by a pixel: each is within
    `tolerance.sampling_ulps(max_coordinate)` of the exact resampling at the images'
    scale, so they are within twice that of each other. `max_coordinate` is the
    largest |coordinate| the maps reach; it defaults to twice the images' largest
    side (the layers of the tests read at most a side beyond the border).
    """
    images = np.asarray(images)
    if max_coordinate is None:
        max_coordinate = 2 * max(images.shape[-3:])  # either layout
    ulps = 2 * tolerance.sampling_ulps(max_coordinate)
    tolerance.assert_close(actual, desired, ulps, scale=images)


def check_formats(make, images):
    """channels_first, uint8 and unbatched inputs give the channels_last results."""
    images = np.asarray(images)
    expected = to_numpy(make()(images.astype("float32")))
    assert expected.dtype == np.float32

    first = make(data_format="channels_first")(np.transpose(images, (0, 3, 1, 2)))
    first = np.transpose(to_numpy(first), (0, 2, 3, 1))
    assert_same_resampling(first, expected, images)

    as_uint8 = to_numpy(make()(images.astype("uint8")))
    assert_same_resampling(as_uint8, expected, images)

    single = to_numpy(make()(images[0].astype("float32")))
    first_only = to_numpy(make()(images[:1].astype("float32")))[0]
    assert_same_resampling(single, first_only, images)
    return expected


def check_same_seed(make, images):
    """Two fresh layers with one seed agree; successive calls of one layer differ."""
    layer = make()
    first, second = to_numpy(layer(images)), to_numpy(layer(images))
    np.testing.assert_array_equal(to_numpy(make()(images)), first)
    assert not np.allclose(first, second)


def check_tf_data(make, images, output_shape, variable_sizes=()):
    """Runs in `tf.data` on batched and unbatched elements (and, for the crop
    layers, unbatched images of different sizes mapped before batching)."""
    images = np.asarray(images, "float32")
    ds = tf.data.Dataset.from_tensor_slices(images).batch(2).map(make())
    batches = [b.numpy() for b in ds]
    assert batches[0].shape == (2,) + tuple(output_shape)
    assert np.all(np.isfinite(np.concatenate(batches)))

    unbatched = tf.data.Dataset.from_tensor_slices(images).map(make())
    assert next(iter(unbatched)).shape == tuple(output_shape)

    def run():
        ds = tf.data.Dataset.from_tensors(images).repeat(2).map(make())
        return np.stack([b.numpy() for b in ds])

    once, twice = run(), run()
    np.testing.assert_array_equal(once, twice)
    assert not np.allclose(once[0], once[1])

    if variable_sizes:
        sized = [np.random.default_rng(0).random(s, "float32") for s in variable_sizes]
        ds = tf.data.Dataset.from_generator(
            lambda: iter(sized),
            output_signature=tf.TensorSpec((None, None, images.shape[-1]), tf.float32),
        )
        ds = ds.map(make()).batch(len(sized))
        assert next(iter(ds)).shape == (len(sized),) + tuple(output_shape)


def check_compiled_model(make, input_shape, compile_kwargs):
    """Inside a compiled model: `fit` (training=True) and `predict` (inference)."""
    inputs = keras.Input(input_shape)
    x = make()(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile("sgd", "mse", **compile_kwargs)
    data = np.random.default_rng(0).random((4,) + tuple(input_shape), "float32")
    history = model.fit(data, np.zeros((4, 1)), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.all(np.isfinite(model.predict(data, verbose=0)))


def check_serialization(make, images, tmp_path):
    """Config round trip, and a saved `.keras` model holding the layer."""
    layer = make()
    assert_config_roundtrip(layer)
    inputs = keras.Input(images.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.layers[-1]) is type(layer)
    configs = [x.get_config() for x in (restored.layers[-1], layer)]
    assert json.dumps(configs[0], sort_keys=True) == json.dumps(
        configs[1], sort_keys=True
    )
    assert_same_resampling(
        to_numpy(restored(images, training=False)),
        to_numpy(model(images, training=False)),
        images,
    )
    assert_same_resampling(
        to_numpy(restored.layers[-1](images)), to_numpy(make()(images)), images
    )


def psnr(a, b, peak=1.0):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return np.inf if mse == 0 else 10.0 * np.log10(peak**2 / mse)
