"""The README's FreezeUnfreeze + Mixup recipe trains as written, on tiny data."""

import os
import re

import keras
import numpy as np
import tensorflow as tf

import keras_trainplus as ktp
from tests.helpers.backbones import keras_hub_resnet
from tests.helpers.callbacks import Snapshots

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")


def _freeze_unfreeze_blocks():
    """The Python code blocks of the README's FreezeUnfreeze section."""
    with open(README) as f:
        text = f.read()
    section = text.split("### `FreezeUnfreeze`", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _short(code):
    """The recipe with 2 epochs, the first one frozen, instead of 20 and 2."""
    code, epochs = re.subn(r"\bepochs=20\b", "epochs=2", code)
    code, frozen = re.subn(r"\bfreeze_epochs=2\b", "freeze_epochs=1", code)
    assert (epochs, frozen) == (1, 1), code
    return code


def _dataset(rng, count):
    images = rng.uniform(0, 1, (count, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 5, count).astype("int32")
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)


def test_mixup_with_freeze_unfreeze_recipe_trains(rng):
    blocks = _freeze_unfreeze_blocks()
    recipe = [block for block in blocks if "Mixup" in block]
    assert len(recipe) == 1, blocks

    backbone = keras_hub_resnet()
    inputs = keras.Input(backbone.input_shape[1:])
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(5)(features))
    snapshots = Snapshots(backbone.weights)
    fits = []
    original_fit = model.fit

    def fit(*args, callbacks=(), **kwargs):
        # Records the run and watches the backbone's weights epoch by epoch.
        history = original_fit(*args, callbacks=[*callbacks, snapshots], **kwargs)
        fits.append(history)
        return history

    model.fit = fit
    namespace = {
        "keras": keras,
        "ktp": ktp,
        "backbone": backbone,
        "model": model,
        "train": _dataset(rng, 12),
        "val": _dataset(rng, 8),
    }
    exec(_short(recipe[0]), namespace)

    (history,) = fits
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["val_loss"]).all()
    frozen, unfrozen = snapshots.epochs
    assert all(np.array_equal(a, b) for a, b in zip(snapshots.initial, frozen))
    changed = [not np.array_equal(a, b) for a, b in zip(frozen, unfrozen)]
    assert any(changed)  # the top group trained in the second epoch
