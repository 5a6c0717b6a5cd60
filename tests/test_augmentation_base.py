"""The shared base of the augmentation layers, exercised through a minimal subclass."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_trainplus.layers._base import BaseAugmentation
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes


class OffsetProbe(BaseAugmentation):
    """Adds one uniform offset in [0, 1) per image."""

    def get_random_transformation(self, images):
        batch = self.backend.core.shape(images)[0]
        return {"offset": self.backend.random.uniform((batch,), seed=self._seed())}

    def transform_images(self, images, transformation):
        return images + transformation["offset"][:, None, None, None]


def _offsets(inputs, outputs, data_format="channels_last"):
    diff = np.asarray(outputs, dtype=np.float64) - np.asarray(inputs, np.float64)
    return diff.reshape(diff.shape[0], -1) if diff.ndim == 4 else diff.reshape(1, -1)


@pytest.mark.smoke
def test_batched_unbatched_uint8_and_channels_first():
    images = np.arange(2 * 4 * 5 * 3, dtype="uint8").reshape(2, 4, 5, 3)
    layer = OffsetProbe(seed=1)
    out = keras.ops.convert_to_numpy(layer(images))
    assert out.dtype == np.float32 and out.shape == images.shape
    per_image = _offsets(images, out)
    # One offset per image, up to the rounding of each sum at the pixels' scale.
    tolerance.assert_close(per_image, per_image[:, :1], 1, scale=out)
    assert np.all((per_image >= 0) & (per_image < 1))

    single = keras.ops.convert_to_numpy(layer(images[0]))
    assert single.shape == images[0].shape

    first = OffsetProbe(seed=1, data_format="channels_first")
    out = keras.ops.convert_to_numpy(first(np.transpose(images, (0, 3, 1, 2))))
    assert out.shape == (2, 3, 4, 5)

    inference = keras.ops.convert_to_numpy(layer(images, training=False))
    np.testing.assert_array_equal(inference, images.astype("float32"))


@pytest.mark.smoke
def test_rank_error_names_the_shape():
    with pytest.raises(ValueError, match=r"rank 4 .* Received: inputs.shape=\(4, 5\)"):
        OffsetProbe()(np.zeros((4, 5), "float32"))


@pytest.mark.smoke
def test_runs_in_tf_data_on_every_backend():
    images = np.zeros((6, 4, 4, 3), "float32")
    layer = OffsetProbe(seed=3)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(4).map(layer)
    batches = [b.numpy() for b in ds]
    assert [b.shape[0] for b in batches] == [4, 2]
    offsets = np.concatenate([b[:, 0, 0, 0] for b in batches])
    assert len(np.unique(offsets)) == 6

    unbatched = tf.data.Dataset.from_tensor_slices(images).map(layer)
    assert [b.shape for b in unbatched][0] == (4, 4, 3)


def test_same_seed_same_draws_in_tf_data():
    images = np.zeros((4, 4, 4, 3), "float32")

    def draws():
        layer = OffsetProbe(seed=11)
        ds = tf.data.Dataset.from_tensors(images).repeat(2).map(layer)
        return np.stack([b.numpy() for b in ds])

    first, second = draws(), draws()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("mode, compile_kwargs", compile_modes())
def test_inside_a_compiled_model(mode, compile_kwargs):
    inputs = keras.Input((4, 4, 3))
    x = OffsetProbe(seed=5)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse", **compile_kwargs)
    data = np.zeros((8, 4, 4, 3), "float32")
    model.fit(data, np.zeros((8, 1)), epochs=1, batch_size=4, verbose=0)
    # At inference the layer is the identity: the prediction is the bias alone.
    prediction = model.predict(data, verbose=0)
    bias = keras.ops.convert_to_numpy(model.layers[-1].bias)
    # Exact on any CPU: zeros times the kernel add exactly nothing to the bias.
    np.testing.assert_array_equal(prediction, np.broadcast_to(bias, (8, 1)))
