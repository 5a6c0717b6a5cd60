"""FreezeUnfreeze: train a new head on a frozen backbone, then fine-tune, in one fit."""

import weakref

import keras

from keras_trainplus import _backbone
from keras_trainplus import _compat
from keras_trainplus._validation import PACKAGE
from keras_trainplus._validation import check_bool
from keras_trainplus._validation import check_number
from keras_trainplus.callbacks import _freeze_checks

# model -> the `trainable` flags its backbone layers and variables had before the
# first `fit` with this callback; kept until `on_train_end` restores them, so that a
# `fit` interrupted by an exception and started again does not take our flags for
# the user's.
_ORIGINAL_FLAGS = weakref.WeakKeyDictionary()


def _set_trainable(layer, value):
    """Sets `layer.trainable` and, recursively, its sublayers' flags.

    Under TensorFlow, assigning an attribute its current value is skipped by the
    trackable machinery, so the layer's setter (which propagates the flag to the
    sublayers) would not run; flipping first makes it run.
    """
    if layer.trainable == value:
        layer.trainable = not value
    layer.trainable = value


@keras.saving.register_keras_serializable(package=PACKAGE)
class FreezeUnfreeze(keras.callbacks.Callback):
    """Trains the head with the backbone frozen, then unfreezes it, in one `fit`.

    Transfer learning with gradual unfreezing (Howard & Ruder 2018, "Universal
    Language Model Fine-tuning for Text Classification", arXiv:1801.06146) as in
    fastai's `fine_tune`: for the first `freeze_epochs` epochs only the new layers
    train; then the backbone is unfrozen, all at once or gradually (one more layer
    group every `unfreeze_every` epochs, from the top down), and trains with a
    smaller learning rate. With `G` groups numbered from the top (0) down, group
    `i` trains from epoch `freeze_epochs + i * unfreeze_every`. The phase is a
    function of the epoch index, so `keras.callbacks.BackupAndRestore` (which saves
    the epoch) and `fit(initial_epoch=...)` resume with the right layers frozen.

    Each phase change sets `layer.trainable` and rebuilds the train function
    (`model.make_train_function(force=True)`): one retrace per phase change on
    TensorFlow (graph and XLA) and JAX, none otherwise. The optimizer is the one
    `fit` built on every trainable variable of the model, so the state of weights
    that were already training (the head's Adam moments, LookAhead's slow weights)
    is kept when the backbone joins; compile with the backbone trainable, this
    callback freezes it before the first step.

    Discriminative learning rate: the optimizer applies it. Compile with
    `keras_trainplus.optimizers.LearningRateMultipliers(optimizer, {backbone: m})`
    (the backbone then trains exactly as `optimizer` at `m * lr`; or with the
    multipliers of `layer_decay`, one per group); the callback checks before the
    first step that the optimizer gives every backbone weight the factor
    `backbone_learning_rate_multiplier` and raises with the line to write
    otherwise. It never changes the optimizer, so nothing it does to the
    optimizer can outlive `fit`, also when `fit` ends with an exception or
    `KeyboardInterrupt` (Keras then skips `on_train_end`). Under JAX the model's
    optimizer must be a `LearningRateMultipliers` (inside Keras's
    `LossScaleOptimizer`, if any) also with `m = 1`: Keras's JAX trainer hands the
    optimizer only the trainable variables, a subset while layers are frozen,
    which only that wrapper accepts. `keras.optimizers.MultiOptimizer` is refused
    (it requires all its variables at every step).

    BatchNormalization: with `train_bn=False` (Keras's fine-tuning advice) the
    backbone's BatchNormalization layers keep `trainable=False` for the whole fit,
    so they run in inference mode and neither their moving statistics nor their
    `gamma`/`beta` change, also after unfreezing. With `train_bn=True` they are
    frozen with their group and train (batch statistics, updated moving averages)
    once it is unfrozen. Layers the user had frozen stay frozen; every flag is
    restored when `fit` ends. After an interrupted `fit` the flags stay as the
    callback set them until the next `fit` with a `FreezeUnfreeze` on this model
    restores them first. A model saved while the backbone is frozen (e.g. by
    `ModelCheckpoint`) keeps those flags: resume by building and compiling the
    model as for the first fit and calling `model.load_weights(path)` (see the
    error message). Use one `FreezeUnfreeze` per model (several backbones go into
    one `backbone` list or pattern).

    Args:
        backbone: the pretrained part of the model: a layer of the model, a layer
            name, a list of layer names, or a glob pattern on layer names such as
            `"block*"` (nested layers are searched too). Defaults to none
            (required).
        freeze_epochs: number of epochs trained with the backbone frozen. `0`
            starts unfrozen. Defaults to `1`.
        train_bn: whether the backbone's BatchNormalization layers train once
            unfrozen. Defaults to `False`.
        backbone_learning_rate_multiplier: the factor `m > 0` on the backbone's
            learning rate, which the compiled optimizer must apply (see above);
            `1.0` trains it like the head and needs no wrapper outside JAX;
            `None` accepts whatever multipliers the optimizer has (e.g.
            `layer_decay`'s). Defaults to `0.1`.
        unfreeze_every: `None` to unfreeze the whole backbone after
            `freeze_epochs`; an integer `n >= 1` to unfreeze one more group every
            `n` epochs, from the top down. Defaults to `None`.
        groups: with `unfreeze_every`: `"auto"` infers the groups from the stage /
            block layer names of KerasCV, KerasHub and `keras.applications`
            backbones (ResNet stacks, DenseNet dense blocks, CSPDarkNet stages,
            EfficientNet stages, MobileNet blocks; stem layers join the bottom
            group, top layers the top group); or a list of groups in forward
            order (input to output), each a layer name, pattern or list of names
            of the backbone's layers; unlisted layers join the first group.
            Defaults to `"auto"`.
        verbose: `1` prints each phase change. Defaults to `0`.

    Example (with a pretrained KerasHub backbone in practice, e.g.
    `keras_hub.models.ResNetBackbone.from_preset("resnet_18_imagenet")`):

    >>> import numpy as np
    >>> backbone = keras.Sequential(
    ...     [keras.layers.Dense(8, name="block1_dense"),
    ...      keras.layers.Dense(8, name="block2_dense")], name="backbone")
    >>> model = keras.Sequential([keras.Input((4,)), backbone, keras.layers.Dense(1)])
    >>> from keras_trainplus.optimizers import LearningRateMultipliers
    >>> model.compile(
    ...     LearningRateMultipliers(keras.optimizers.Adam(1e-3), {backbone: 0.1}),
    ...     "mse")
    >>> callback = FreezeUnfreeze(backbone, freeze_epochs=1, unfreeze_every=1)
    >>> _ = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3, verbose=0,
    ...               callbacks=[callback])
    >>> callback.group_names
    [['block1_dense'], ['block2_dense']]
    >>> callback.unfrozen_groups  # during the last epoch
    2
    """

    def __init__(
        self,
        backbone,
        freeze_epochs=1,
        train_bn=False,
        backbone_learning_rate_multiplier=0.1,
        unfreeze_every=None,
        groups="auto",
        verbose=0,
    ):
        super().__init__()
        if not isinstance(backbone, (keras.layers.Layer, str, list, tuple)):
            raise ValueError(
                "Argument `backbone` must be a layer, a layer name, a list of layer "
                f"names or a name pattern. Received: backbone={backbone!r}"
            )
        if isinstance(backbone, (list, tuple)) and not backbone:
            raise ValueError("Argument `backbone` must not be an empty list.")
        check_bool("train_bn", train_bn)
        self.backbone = backbone
        self.freeze_epochs = check_number(
            "freeze_epochs", freeze_epochs, 0, integer=True
        )
        self.train_bn = train_bn
        if backbone_learning_rate_multiplier is not None:
            backbone_learning_rate_multiplier = check_number(
                "backbone_learning_rate_multiplier",
                backbone_learning_rate_multiplier,
                0,
                low_inclusive=False,
            )
        self.backbone_learning_rate_multiplier = backbone_learning_rate_multiplier
        if unfreeze_every is not None:
            unfreeze_every = check_number(
                "unfreeze_every", unfreeze_every, 1, integer=True
            )
        self.unfreeze_every = unfreeze_every
        groups = _backbone.check_groups(groups)
        if groups != "auto" and unfreeze_every is None:
            raise ValueError(
                "Argument `groups` needs `unfreeze_every` (the epochs between two "
                "groups); without it the backbone is unfrozen all at once."
            )
        self.groups = groups
        self.verbose = check_number("verbose", verbose, 0, 1, integer=True)
        self.unfrozen_groups = None
        self.group_names = None

    def _resolve(self):
        roots = _backbone.resolve_backbone(self.model, self.backbone)
        if self.unfreeze_every is None:
            return roots, [_backbone.backbone_units(roots)]
        return roots, _backbone.split_groups(roots, self.groups)

    def on_train_begin(self, logs=None):
        self._roots, self._groups = self._resolve()
        self.group_names = [[layer.name for layer in g] for g in self._groups]
        sublayers = [s for root in self._roots for s in _compat.flatten_layers(root)]
        variables = [v for root in self._roots for v in root.weights]
        if self.model not in _ORIGINAL_FLAGS:
            _ORIGINAL_FLAGS[self.model] = (
                [(layer, layer.trainable) for layer in sublayers],
                [(v, v.trainable) for v in variables],
            )
        original_layers, original_variables = _ORIGINAL_FLAGS[self.model]
        self._restore_flags()
        _freeze_checks.check(
            self.model, variables, self.backbone_learning_rate_multiplier
        )
        self._batch_norms = [
            s for s in sublayers if isinstance(s, keras.layers.BatchNormalization)
        ]
        self._user_frozen_layers = [layer for layer, on in original_layers if not on]
        self._user_frozen_variables = [v for v, on in original_variables if not on]
        self.unfrozen_groups = None

    def unfrozen_groups_at(self, epoch):
        """Number of backbone groups (from the top) trainable during `epoch`."""
        count = len(self._groups)
        if epoch < self.freeze_epochs:
            return 0
        if self.unfreeze_every is None:
            return count
        return min(count, 1 + (epoch - self.freeze_epochs) // self.unfreeze_every)

    def on_epoch_begin(self, epoch, logs=None):
        unfrozen = self.unfrozen_groups_at(epoch)
        if unfrozen == self.unfrozen_groups:
            return
        self._set_flags(unfrozen)
        self.model.make_train_function(force=True)
        self.unfrozen_groups = unfrozen
        if self.verbose:
            print(
                f"Epoch {epoch + 1}: FreezeUnfreeze: {unfrozen}/{len(self._groups)} "
                "backbone groups trainable."
            )

    def _set_flags(self, unfrozen):
        for root in self._roots:
            _set_trainable(root, unfrozen > 0)
        for group in self._groups[: len(self._groups) - unfrozen]:
            for layer in group:
                _set_trainable(layer, False)
        if not self.train_bn:
            for layer in self._batch_norms:
                _set_trainable(layer, False)
        for layer in self._user_frozen_layers:
            _set_trainable(layer, False)
        for variable in self._user_frozen_variables:
            variable.trainable = False

    def _restore_flags(self):
        original_layers, original_variables = _ORIGINAL_FLAGS[self.model]
        for layer, trainable in original_layers:
            _set_trainable(layer, trainable)
        for variable, trainable in original_variables:
            variable.trainable = trainable

    def on_train_end(self, logs=None):
        self._restore_flags()
        del _ORIGINAL_FLAGS[self.model]
        self.model.make_train_function(force=True)

    def get_config(self):
        backbone = self.backbone
        if isinstance(backbone, keras.layers.Layer):
            backbone = backbone.name
        elif isinstance(backbone, tuple):
            backbone = list(backbone)
        return {
            "backbone": backbone,
            "freeze_epochs": self.freeze_epochs,
            "train_bn": self.train_bn,
            "backbone_learning_rate_multiplier": self.backbone_learning_rate_multiplier,
            "unfreeze_every": self.unfreeze_every,
            "groups": self.groups,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
