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


class RecordingStep(_compat.WholeStepOptimizer):
    """Records what Keras hands to the whole-step hook, and takes an SGD step."""

    def __init__(self, **kwargs):
        super().__init__(learning_rate=1.0, **kwargs)
        self.calls = []

    def update_all(self, grads, trainable_variables):
        self.calls.append((list(grads), list(trainable_variables)))
        for grad, variable in zip(grads, trainable_variables):
            self.assign_sub(variable, grad)


@pytest.mark.smoke
def test_whole_step_hook_gets_all_processed_gradients_once_per_step():
    """Keras calls `_backend_update_step` once with every clipped gradient."""
    variables = [keras.Variable(np.zeros(2, "float32")) for _ in range(3)]
    optimizer = RecordingStep(clipvalue=0.5, loss_scale_factor=2.0)
    grads = [np.full(2, 4.0, "float32"), None, np.full(2, -0.4, "float32")]
    optimizer.apply(grads, variables)
    assert len(optimizer.calls) == 1
    seen, stepped = optimizer.calls[0]
    assert [id(v) for v in stepped] == [id(variables[0]), id(variables[2])]  # no grad
    np.testing.assert_allclose(keras.ops.convert_to_numpy(seen[0]), 0.5)  # 4/2 clipped
    np.testing.assert_allclose(keras.ops.convert_to_numpy(seen[1]), -0.2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]), -0.5)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 1


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="stateless_apply: JAX")
def test_whole_step_hook_runs_inside_stateless_apply():
    import jax

    variables = [keras.Variable(np.ones(2, "float32"))]
    optimizer = RecordingStep()
    optimizer.build(variables)
    new, _ = jax.jit(optimizer.stateless_apply)(
        [v.value for v in optimizer.variables],
        [np.full(2, 0.25, "float32")],
        [variables[0].value],
    )
    np.testing.assert_allclose(np.asarray(new[0]), 0.75)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]), 1.0)


@pytest.mark.smoke
def test_optimizer_variable_index_is_the_built_position():
    variables = [keras.Variable(np.zeros(n, "float32")) for n in (1, 2, 3)]
    optimizer = keras.optimizers.SGD()
    optimizer.build(variables)
    assert [_compat.optimizer_variable_index(optimizer, v) for v in variables] == [
        0,
        1,
        2,
    ]
    built = _compat.optimizer_built_variables(optimizer)
    assert [id(v) for v in built] == [id(v) for v in variables]


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
