"""The only place keras_trainplus touches private Keras (`keras.src` and the private
members of Keras's public classes).

Each hook here exists because Keras 3 offers no public equivalent; each is covered by
a test (`tests/test_compat.py` and the tests of its callers), and the supported Keras
range is pinned in `pyproject.toml`.
"""

import contextlib

import keras


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


# Keras's optimizer methods between the public `apply` and the per-variable public
# `update_step`; an optimizer that overrides none of them takes its whole step in
# `update_step` (plus the base class's decoupled weight decay).
_STEP_MACHINERY = (
    "apply",
    "stateless_apply",
    "_backend_apply_gradients",
    "_backend_update_step",
    "_apply_weight_decay",
)


def steps_through_update_step(optimizer):
    """Whether `optimizer`'s step is its `update_step` applied to each variable.

    True for Keras's SGD, Adam, AdamW, RMSprop, Adagrad, Lion, ... and this
    package's Nesterov and RAdam: they implement the public `update_step(gradient,
    variable, learning_rate)` and inherit the rest of the step (gradient clipping,
    weight decay, iteration count) from Keras's base class. False for wrappers
    (LossScaleOptimizer, LookAhead) and for optimizers that also compute in the
    private per-step methods (Nadam's `_backend_update_step`, Muon's weight decay).
    `LearningRateMultipliers` calls `update_step` itself with a scaled learning rate
    only when this is true. Keras's per-backend classes (`keras.src.backend.*`)
    reimplement the machinery without changing the rule (PyTorch's fused
    `_parallel_update_step` for SGD, Adam, ...) and do not count. If Keras renames
    a private method, no class defines it and the answer is as for an optimizer
    that does not override it.
    """
    import keras

    cls = type(optimizer)
    if cls.update_step is keras.optimizers.Optimizer.update_step:
        return False
    for klass in cls.__mro__:
        module = klass.__module__
        if module.startswith("keras.src.backend.") or module in (
            "keras.src.optimizers.base_optimizer",
            "keras.src.optimizers.optimizer",
        ):
            continue
        if any(name in vars(klass) for name in _STEP_MACHINERY):
            return False
    return True


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer`'s decoupled weight decay applies to `variable`.

    The public `exclude_from_weight_decay(var_list, var_names)` records the
    exclusions, but only the private `_use_weight_decay` reads them back.
    """
    return optimizer._use_weight_decay(variable)


class TensorBoardOnDemandTuner:
    """Mixin for KerasTuner tuners: the TensorBoard hook runs only when it is used.

    KerasTuner 1.4 imports `tensorboard.plugins.hparams` at the start of every
    trial under the TensorFlow backend, in the private hook
    `keras_tuner.Tuner._configure_tensorboard_dir`, to attach HParams logging to a
    `keras.callbacks.TensorBoard` callback if the user passed one. TensorFlow 2.20
    and later no longer install TensorBoard, so every trial then fails with
    `ModuleNotFoundError` although no TensorBoard callback is in use; KerasTuner
    offers no public switch. Put before the tuner class in the bases.
    """

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        import keras

        if any(isinstance(c, keras.callbacks.TensorBoard) for c in callbacks):
            super()._configure_tensorboard_dir(callbacks, trial, execution)


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


def optimizer_variable_index(optimizer, variable):
    """Returns the position of `variable` in the list `optimizer` was built on.

    Keras's optimizers find the slots of a variable with the private
    `Optimizer._get_variable_index` (the pattern the `keras.optimizers.Optimizer`
    docstring shows for subclasses). It keys variables by identity, and under
    `tf.distribute` by their distributed container, which a public lookup (e.g.
    `list.index`, which compares values) cannot reproduce.
    """
    return optimizer._get_variable_index(variable)


class WholeStepOptimizer(keras.optimizers.Optimizer):
    """Base class of the optimizers that update all variables in one call.

    Keras's `Optimizer.apply` (and `stateless_apply`, which calls it) unscales,
    clips and weight-decays the gradients, then hands all of them to the private
    `_backend_update_step(grads, trainable_variables, learning_rate)`, once per
    step (inside its gradient-accumulation conditional), before the moving average
    (`use_ema`) and the constraints. The public `update_step` it calls by default
    sees one variable at a time; an optimizer that needs all gradients at once (a
    wrapper that steps an inner optimizer, then runs one conditional over every
    variable) overrides that private method, here and nowhere else.

    Subclasses implement `update_all(grads, trainable_variables)`: `grads` are the
    processed gradients of the variables that have one, in the same order.
    """

    def update_all(self, grads, trainable_variables):
        raise NotImplementedError

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self.update_all(list(grads), list(trainable_variables))
