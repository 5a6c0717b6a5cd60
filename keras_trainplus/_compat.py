"""The only place keras_trainplus touches private Keras (`keras.src`).

Each hook here exists because Keras 3 offers no public equivalent; each is covered by
a test (`tests/test_compat.py` and the tests of its callers), and the supported Keras
range is pinned in `pyproject.toml`.
"""

import contextlib


def data_layer_class():
    """The base class that lets a Keras layer run inside `tf.data` on any backend.

    Keras's own preprocessing layers derive from it: when called on TensorFlow graph
    tensors (a `tf.data` map) under the JAX or PyTorch backend, it switches the layer's
    `backend` attribute to TensorFlow for that call, so the same layer code runs in
    the input pipeline and inside a compiled model. Keras 3 does not export it; it is
    `keras.src.layers.preprocessing.data_layer.DataLayer` since Keras 3.12.

    Subclasses compute with `self.backend.numpy`, `.image`, `.random`, `.core`,
    `.math` and `.nn` (the per-backend op modules behind `keras.ops`), and draw random
    numbers with the generator returned by
    `self._get_seed_generator(self.backend.name)`.
    """
    from keras.src.layers.preprocessing.data_layer import DataLayer

    return DataLayer


@contextlib.contextmanager
def computing_with(layers, backend_name):
    """Makes `data_layer_class()` layers compute with `backend_name` for a block.

    A data layer switches its own `backend` when it is called inside `tf.data`, but
    a layer that drives other layers' methods directly (`GeometricChain` asks each
    wrapped layer for its draws and coordinate maps) must switch theirs to the
    backend it computes with itself. The `backend` attribute is Keras's unexported
    `keras.src.utils.backend_utils.DynamicBackend`; its `name` and
    `set_backend(name)` are what `DataLayer.__call__` uses. Each layer gets back
    the backend it had before the block (blocks nest).
    """
    previous = [layer.backend.name for layer in layers]
    for layer in layers:
        layer.backend.set_backend(backend_name)
    try:
        yield
    finally:
        for layer, name in zip(layers, previous):
            layer.backend.set_backend(name)


def in_tensorflow_xla_context():
    """Whether TensorFlow is tracing a graph that XLA will compile.

    TensorFlow's fused image kernels (`ImageProjectiveTransformV3`, behind
    `keras.ops.image.affine_transform`) have no XLA lowering, so a layer that uses
    them in `tf.data` (where they are fastest) must avoid them inside a model
    compiled with `jit_compile=True`. TensorFlow marks the graphs of
    `tf.function(jit_compile=True)` with an XLA control-flow context but exports no
    public query for it. If the private hook moves, this answers `True`: callers then
    take their XLA-safe path, which is correct everywhere.
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return True
    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


def flatten_layers(layer):
    """Returns `layer` and all its sublayers, recursively, parents before children.

    Keras 3 lists only a model's direct layers publicly (`Model.layers`); layers
    nested in custom layers (e.g. the MBConv blocks of EfficientNetV2, whose
    BatchNormalization layers must be found to keep them frozen) are reachable only
    through the private `Layer._flatten_layers`.
    """
    return list(layer._flatten_layers(include_self=True, recursive=True))


def optimizer_built_variables(optimizer):
    """Returns the variables an optimizer was built on (the ones it can update).

    A built Keras optimizer raises "Unknown variable" for any other variable, but
    keeps the list only in the private `_trainable_variables`. Reading it lets a
    callback fail with a clear message before training instead of in the middle of
    `fit`. Returns `None` for an optimizer that is not built yet.
    """
    if not optimizer.built:
        return None
    return list(optimizer._trainable_variables)
