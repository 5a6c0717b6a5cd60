"""The private Keras hooks of keras_trainplus/_compat.py still behave as relied upon."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_trainplus import _compat


class BackendProbe(_compat.data_layer_class()):
    """Records which backend the layer computed with."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, inputs):
        self.seen.append(self.backend.name)
        for module in ("numpy", "image", "random", "core", "math", "nn"):
            assert hasattr(self.backend, module), module
        return self.backend.numpy.add(inputs, 1.0)


@pytest.mark.smoke
def test_data_layer_switches_to_tensorflow_inside_tf_data():
    probe = BackendProbe()
    ds = tf.data.Dataset.from_tensors(np.zeros((2, 2), "float32")).map(probe)
    np.testing.assert_array_equal(next(iter(ds)).numpy(), np.ones((2, 2)))
    assert probe.seen[-1] == "tensorflow"

    out = probe(np.zeros((2, 2), "float32"))
    assert probe.seen[-1] == keras.backend.backend()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), np.ones((2, 2)))


@pytest.mark.smoke
def test_computing_with_switches_layers_and_restores_them():
    probes = [BackendProbe(), BackendProbe()]
    with _compat.computing_with(probes, "tensorflow"):
        outputs = [probe.call(tf.zeros((2,))) for probe in probes]
    assert [probe.seen for probe in probes] == [["tensorflow"], ["tensorflow"]]
    np.testing.assert_array_equal([o.numpy() for o in outputs], np.ones((2, 2)))
    assert all(probe.backend.name == keras.backend.backend() for probe in probes)

    # Restored even when the block raises.
    with pytest.raises(RuntimeError):
        with _compat.computing_with(probes, "tensorflow"):
            raise RuntimeError
    assert all(probe.backend.name == keras.backend.backend() for probe in probes)


@pytest.mark.smoke
def test_computing_with_nests():
    # An inner block gives back the outer block's backend, not the global one.
    probe = BackendProbe()
    with _compat.computing_with([probe], "numpy"):
        with _compat.computing_with([probe], "tensorflow"):
            assert probe.backend.name == "tensorflow"
        assert probe.backend.name == "numpy"
    assert probe.backend.name == keras.backend.backend()
