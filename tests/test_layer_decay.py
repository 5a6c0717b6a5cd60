"""Tests for keras_trainplus.optimizers.layer_decay."""

import keras
import pytest

import keras_trainplus as ktp
from keras_trainplus import _backbone
from tests.helpers.backbones import BUILDERS


def _backbone_model():
    return keras.Sequential(
        [keras.Input((4,))]
        + [keras.layers.Dense(4, name=f"block{i}_dense") for i in range(4)]
        + [keras.layers.ReLU(name="top_relu")],
        name="backbone",
    )


@pytest.mark.smoke
def test_groups_from_the_top_get_decay_powers():
    backbone = _backbone_model()
    multipliers = ktp.optimizers.layer_decay(backbone, 0.5)
    assert {layer.name: m for layer, m in multipliers.items()} == {
        "block0_dense": 0.125,
        "block1_dense": 0.25,
        "block2_dense": 0.5,
        "block3_dense": 1.0,
    }  # the ReLU has no weights: no key


def test_explicit_groups_and_a_list_of_layers():
    backbone = _backbone_model()
    multipliers = ktp.optimizers.layer_decay(
        backbone.layers[:4],
        0.1,
        groups=[["block0_dense", "block1_dense"], "block[23]*"],
    )
    assert {layer.name: m for layer, m in multipliers.items()} == {
        "block0_dense": pytest.approx(0.1),
        "block1_dense": pytest.approx(0.1),
        "block2_dense": 1.0,
        "block3_dense": 1.0,
    }


def test_fastai_slice_spans_a_hundredfold():
    backbone = _backbone_model()
    decay = 100 ** (-1 / 3)  # slice(lr / 100, lr) over 4 groups
    values = sorted(ktp.optimizers.layer_decay(backbone, decay).values())
    assert values[0] == pytest.approx(0.01) and values[-1] == 1.0


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_backbones_get_the_groups_freeze_unfreeze_infers(name):
    backbone = BUILDERS[name]()
    multipliers = ktp.optimizers.layer_decay(backbone, 0.7)
    groups = _backbone.infer_groups(_backbone.backbone_units([backbone]))
    top = len(groups) - 1
    for i, group in enumerate(groups):
        for layer in group:
            if layer.weights:
                assert multipliers[layer] == pytest.approx(0.7 ** (top - i)), layer.name
            else:
                assert layer not in multipliers
    optimizer = ktp.optimizers.LearningRateMultipliers("sgd", multipliers)
    optimizer.build(backbone.trainable_variables)
    assert min(m for _, m in optimizer.get_multipliers()) == pytest.approx(0.7**top)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(decay=0.0),
            r"Argument `decay` must be in \(0, 1\]\. Received: decay=0\.0",
        ),
        (
            dict(decay=1.5),
            r"Argument `decay` must be in \(0, 1\]\. Received: decay=1\.5",
        ),
        (
            dict(backbone="backbone"),
            r"Argument `backbone` must be a layer or a non-empty list of layers\. "
            r"Received: backbone='backbone'",
        ),
        (dict(backbone=[]), r"a non-empty list of layers\. Received: backbone=\[\]"),
        (
            dict(groups=["block0_dense"]),
            r"Argument `groups` must be 'auto' or a list of at least 2 groups",
        ),
        (
            dict(groups=["block0_dense", "nothing"]),
            r"groups\[1\]`: no layer named 'nothing'",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs.setdefault("backbone", _backbone_model())
    kwargs.setdefault("decay", 0.5)
    with pytest.raises(ValueError, match=message):
        ktp.optimizers.layer_decay(**kwargs)


def test_a_backbone_without_stage_names_needs_groups():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="a")])
    with pytest.raises(ValueError, match=r"Could not infer layer groups"):
        ktp.optimizers.layer_decay(plain, 0.5)


@pytest.mark.parametrize(
    "name",
    [
        "keras_trainplus.optimizers.layerwise_decay",
        "keras_trainplus.optimizers.learning_rate_multipliers",
        "keras_trainplus.callbacks.freeze_unfreeze",
    ],
)
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0 and result.failed == 0
