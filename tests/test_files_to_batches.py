"""`examples/files_to_batches.py`: class folders of JPEGs to mixed training batches,
offline (generated JPEGs)."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_trainplus.layers import RandomResizedCrop
from tests.helpers.backend import BACKEND

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "examples",
    "files_to_batches.py",
)
CLASSES = ["astronaut", "cat", "coffee"]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("files_to_batches", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_class_folders_are_jpegs_with_their_labels(example, tmp_path):
    assert example.write_class_folders(str(tmp_path), per_class=3) == CLASSES
    paths, labels, names = example.files_and_labels(str(tmp_path))
    assert names == CLASSES and len(paths) == 9
    for path, label in zip(paths, labels):
        assert os.path.basename(os.path.dirname(path)) == CLASSES[label]
        contents = tf.io.read_file(path)
        assert bool(tf.io.is_jpeg(contents))
        height, width, channels = tf.io.extract_jpeg_shape(contents).numpy()
        assert 160 <= height <= 320 and width >= 1
        assert channels == 3


def test_the_recipe_gives_mixed_batches_and_centre_crops(example, tmp_path):
    example.write_class_folders(str(tmp_path), per_class=4)
    train, validation, names = example.folder_datasets(
        str(tmp_path), validation_fraction=0.25
    )
    raw_validation = list(validation.as_numpy_iterator())
    train, validation = example.input_pipelines(
        train, validation, len(names), size=24, batch_size=4
    )

    batches = list(train.as_numpy_iterator())
    assert [len(x) for x, _ in batches] == [4, 4, 1]
    for images, labels in batches:
        assert images.dtype == np.float32 and images.shape[1:] == (24, 24, 3)
        assert 0.0 <= images.min() and images.max() <= 255.0
        assert labels.shape == (len(images), 3)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    # Mixup mixes pairs of samples of a batch: some labels are not one-hot.
    assert any((labels.max(axis=1) < 1.0).any() for _, labels in batches)

    # Validation: the layer's centred crop of each decoded file, one-hot labels.
    (images, labels), *rest = list(validation.as_numpy_iterator())
    assert not rest and images.dtype == np.uint8 and len(images) == 3
    crop = RandomResizedCrop(24, 24, dtype="uint8")
    for k, (contents, label) in enumerate(raw_validation):
        decoded = tf.io.decode_jpeg(contents, channels=3)
        expected = tf.data.Dataset.from_tensors(decoded).map(
            lambda x: crop(x, training=False)
        )
        np.testing.assert_array_equal(images[k], next(iter(expected)).numpy())
        np.testing.assert_array_equal(labels[k], np.eye(3)[label])


@pytest.mark.skipif(BACKEND == "torch", reason="the recipe is for TF and JAX models")
def test_offline_run_trains_end_to_end(example, capsys):
    accuracy = example.main(
        ["--offline", "--per-class", "8", "--epochs", "1", "--size", "32"]
    )
    assert 0.0 <= accuracy <= 1.0
    out = capsys.readouterr().out
    assert f"3 classes {CLASSES}, crops of 32x32, backend {BACKEND}" in out
    assert "validation accuracy" in out
