"""What the image augmentation layers take: dicts, and the inputs they refuse."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_trainplus.layers import GeometricChain
from keras_trainplus.layers import PCALighting
from keras_trainplus.layers import RandomAffine
from keras_trainplus.layers import RandomLensDistortion
from keras_trainplus.layers import RandomResizedCrop
from keras_trainplus.layers import RandomScaleCrop
from tests.helpers import augmentation as contract

FACTORIES = {
    "RandomResizedCrop": lambda: RandomResizedCrop(8, 10, horizontal_flip=True, seed=1),
    "RandomScaleCrop": lambda: RandomScaleCrop(8, 10, (12, 16), seed=1),
    "RandomAffine": lambda: RandomAffine(rotation=0.1, zoom=0.1, seed=1),
    "RandomLensDistortion": lambda: RandomLensDistortion(seed=1),
    "GeometricChain": lambda: GeometricChain(
        [RandomResizedCrop(8, 10, seed=1), RandomAffine(0.1, seed=2)]
    ),
    "PCALighting": lambda: PCALighting(seed=1),
}
GEOMETRIC = [name for name in FACTORIES if name != "PCALighting"]
ALL = pytest.mark.parametrize("name", sorted(FACTORIES))

IMAGES = np.random.default_rng(0).integers(0, 256, (4, 14, 18, 3)).astype("uint8")
LABELS = np.array([3, 1, 4, 1], "int64")


@pytest.mark.smoke
@ALL
def test_keras_dicts_in_tf_data_transform_the_images_and_keep_the_labels(name):
    # Keras's preprocessing layers take {"images": ..., "labels": ...}; the images
    # are those of the same layer on the images alone, the labels pass unchanged.
    make = FACTORIES[name]
    data = {"images": IMAGES, "labels": LABELS}
    for batch in (None, 2):
        ds = tf.data.Dataset.from_tensor_slices(data)
        plain = tf.data.Dataset.from_tensor_slices(IMAGES)
        if batch:
            ds, plain = ds.batch(batch), plain.batch(batch)
        out = list(ds.map(make()).as_numpy_iterator())
        expected = np.concatenate(
            [
                np.reshape(x, (-1,) + x.shape[-3:])
                for x in plain.map(make()).as_numpy_iterator()
            ]
        )
        images = np.concatenate(
            [np.reshape(o["images"], (-1,) + o["images"].shape[-3:]) for o in out]
        )
        np.testing.assert_array_equal(images, expected)
        labels = np.concatenate([np.reshape(o["labels"], (-1,)) for o in out])
        np.testing.assert_array_equal(labels, LABELS)
        assert out[0]["labels"].dtype == np.int64


@pytest.mark.smoke
def test_keras_dict_called_directly():
    out = FACTORIES["RandomResizedCrop"]()({"images": IMAGES, "labels": LABELS})
    expected = FACTORIES["RandomResizedCrop"]()(IMAGES)
    np.testing.assert_array_equal(
        contract.to_numpy(out["images"]), contract.to_numpy(expected)
    )
    assert out["labels"] is LABELS


@pytest.mark.smoke
@pytest.mark.parametrize(
    "data",
    [{"labels": LABELS}, {"images": IMAGES, "segmentation_masks": IMAGES[..., 0]}],
    ids=["no images", "masks"],
)
def test_dicts_with_other_keys_are_refused(data):
    with pytest.raises(
        ValueError,
        match=r"RandomAffine takes a dict with the key 'images' and optionally "
        r"'labels' .* Received keys: \[",
    ):
        FACTORIES["RandomAffine"]()(data)


@pytest.mark.smoke
def test_image_label_pairs_mapped_whole_get_a_message_that_shows_the_fix():
    ds = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))
    with pytest.raises(
        TypeError,
        match=r"RandomResizedCrop takes images, or a dict .* received 2 positional "
        r"arguments\. .* `ds\.map\(lambda x, y: \(layer\(x\), y\)\)`",
    ):
        ds.map(FACTORIES["RandomResizedCrop"]())
    # The documented form works.
    crop = FACTORIES["RandomResizedCrop"]()
    x, y = next(iter(ds.map(lambda x, y: (crop(x), y))))
    assert x.shape == (8, 10, 3) and int(y) == 3


@pytest.mark.smoke
@ALL
def test_rank_3_symbolic_input_is_refused(name):
    # Inside a model every tensor has a batch axis: rank 3 is (batch, height, width),
    # images without channels, which a layer would otherwise read as one image.
    inputs = keras.Input((14, 18))
    with pytest.raises(
        ValueError,
        match=rf"{name} inside a model needs inputs of rank 4 \(batch, height, width, "
        r"channels\)\. Received: a symbolic input of shape \(None, 14, 18\)",
    ):
        FACTORIES[name]()(inputs)


@pytest.mark.smoke
@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("shape", [(2, 0, 0, 3), (0, 5, 3), (1, 6, 0, 3)])
def test_empty_images_are_refused(name, shape):
    with pytest.raises(
        ValueError,
        match=rf"{name} needs images of height and width >= 1\. Received: "
        rf"inputs\.shape={tuple(shape)}".replace("(", r"\(").replace(")", r"\)"),
    ):
        FACTORIES[name]()(np.zeros(shape, "uint8"))


@pytest.mark.parametrize("name", ["RandomResizedCrop", "RandomScaleCrop"])
def test_empty_images_are_refused_inside_tf_data(name):
    # Sizes unknown until the pipeline runs: the check runs in the graph.
    images = [np.zeros((9, 7, 3), "uint8"), np.zeros((0, 0, 3), "uint8")]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec((None, None, 3), "uint8")
    ).map(FACTORIES[name]())
    iterator = iter(ds)
    assert next(iterator).shape == (8, 10, 3)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"{name} needs images of height and width >= 1",
    ):
        next(iterator)


@pytest.mark.smoke
@ALL
def test_uint8_dtype_rounds_the_float_outputs(name):
    # `dtype="uint8"`: computed in float32, rounded to the nearest and clipped
    # (4x less memory per batch than float32 in an input pipeline).
    images = np.concatenate([IMAGES, IMAGES[:, ::-1] // 2]).astype("float32")

    def make(**kwargs):
        layer = FACTORIES[name]()
        config = layer.get_config()
        config.update(kwargs)
        return type(layer).from_config(config)

    for x in (images, images[0]):
        floats = contract.to_numpy(make()(x))
        out = contract.to_numpy(make(dtype="uint8")(x))
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, np.clip(np.round(floats), 0, 255))
