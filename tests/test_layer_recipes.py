"""The README's augmentation recipes run as written, composed with Keras's layers."""

import os
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from tests.helpers import tolerance

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")


def _recipes():
    """The Python code blocks under the README's "### Recipes" heading."""
    with open(README) as f:
        text = f.read()
    section = text.split("### Recipes", 1)[1]
    section = re.split(r"\n### |<!-- end section", section)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, blocks
    return blocks


def _photos():
    """Three photos of different sizes with integer labels, as a tf.data.Dataset."""
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]

    def generate():
        for label, photo in enumerate(photos):
            yield photo, label

    signature = (
        tf.TensorSpec((None, None, 3), tf.uint8),
        tf.TensorSpec((), tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


@pytest.mark.smoke
def test_resnet_recipe_in_tf_data():
    namespace = {"train_ds": _photos()}
    exec(_recipes()[0], namespace)
    images, labels = next(iter(namespace["train_ds"]))
    assert images.shape == (3, 224, 224, 3) and labels.shape == (3, 1000)
    # Label smoothing and the Mixup blend: ~8 float32 roundings at the scale 1 of the
    # largest entries (the sum itself in float64).
    tolerance.assert_close(labels.numpy().astype(np.float64).sum(axis=1), 1.0, 8)
    assert np.isfinite(images.numpy()).all()


def test_alexnet_recipe_in_a_compiled_model():
    namespace = {}
    exec(_recipes()[1], namespace)
    model = namespace["model"]
    images = np.random.default_rng(0).integers(0, 256, (4, 256, 256, 3)).astype("uint8")
    labels = np.arange(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    # Every layer supports XLA: Keras does not fall back to jit_compile=False.
    assert not [w for w in caught if "jit_compile" in str(w.message)]
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (4, 1000)
    # At inference the augmentation is deterministic.
    again = model.predict(images, verbose=0)
    # The same compiled function on the same images: the same arithmetic, up to the
    # order a multi-threaded kernel may pick, a few units of the outputs' scale.
    tolerance.assert_close(again, probabilities, 16)
