"""The compiled tier: every optimizer, callback, model-building style and augmentation
layer trains an ordinary convnet under XLA.

Each case compiles a convnet of about 52k parameters with BatchNormalization (32x32x3
images, 4 classes; a KerasHub `ResNetBackbone` of about 106k) with `jit_compile=True`
(TensorFlow XLA; JAX always compiles with XLA) and trains it for a few steps: the
matrix, not the step count, is the point. Every case checks what it ran for: finite
losses, weights that moved, and the callback's effect (EarlyStopping's stop and
restored weights, FreezeUnfreeze's phases, snapshot files that load and hold the
weights of their step, SWA's average and re-calibrated BatchNormalization).

Layout (the README's support matrix is derived from it):

- `test_optimizer_with_callback`: each optimizer x each callback, functional model;
- `test_build_style_with_optimizer`: each other building style x each optimizer,
  with the callbacks taken in turn, so that every optimizer meets every style and
  every style meets every callback;
- `test_augmentation_layer_in_compiled_model`: each augmentation layer inside the
  model (`test_mixup_in_compiled_train_step`: Mixup/CutMix on `(images, labels)` in
  the train step, class indices and one-hot labels).

`--integration-jit-compile=auto` and `--integration-dtype-policy=mixed_float16`
(options of `tests/conftest.py`) rerun it as `benchmarks/accelerator_check.py` does.
"""

import fnmatch
import os

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from keras_trainplus import _compat

pytestmark = pytest.mark.integration

IMAGE_SHAPE = (32, 32, 3)
CLASSES = 4
BATCH = 8
STEPS = 2  # per epoch
LEARNING_RATE = 1e-2
BACKBONE_MULTIPLIER = 0.1  # FreezeUnfreeze's default


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(BATCH * STEPS,) + IMAGE_SHAPE).astype("float32")
    # A learnable label: the brightest quarter of the image.
    quarters = [x[:, :16, :16], x[:, :16, 16:], x[:, 16:, :16], x[:, 16:, 16:]]
    y = np.argmax([q.mean(axis=(1, 2, 3)) for q in quarters], axis=0).astype("int32")
    return x, y


# ------------------------------------------------------------------ optimizers

OPTIMIZERS = {
    "Nesterov": lambda rate: ktp.optimizers.Nesterov(rate, momentum=0.9),
    "RAdam": lambda rate: ktp.optimizers.RAdam(rate),
    "LookAhead-Adam": lambda rate: ktp.optimizers.LookAhead(
        keras.optimizers.Adam(rate), sync_period=2
    ),
    "LookAhead-SGD": lambda rate: ktp.optimizers.LookAhead(
        keras.optimizers.SGD(rate, momentum=0.9), sync_period=2
    ),
    "Ranger": lambda rate: ktp.optimizers.Ranger(rate, sync_period=2),
}

# ------------------------------------------------------------ building styles


def _layers():
    """The convnet's layers; the convolutional part's names start with `backbone_`."""
    return [
        keras.layers.Conv2D(48, 3, padding="same", use_bias=False, name="backbone_c1"),
        keras.layers.BatchNormalization(name="backbone_bn1"),
        keras.layers.ReLU(name="backbone_relu1"),
        keras.layers.Conv2D(
            112, 3, strides=2, padding="same", use_bias=False, name="backbone_c2"
        ),
        keras.layers.BatchNormalization(name="backbone_bn2"),
        keras.layers.ReLU(name="backbone_relu2"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(CLASSES, name="head"),
    ]


@keras.saving.register_keras_serializable(package="keras_trainplus_tests")
class ConvNet(keras.Model):
    """The convnet as a subclassed model (layers as attributes, a `call`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = _layers()

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.blocks:
            x = layer(x, training=training)
        return x


def _functional(layers, backbone=None):
    inputs = keras.Input(IMAGE_SHAPE)
    x = inputs
    for layer in ([backbone] if backbone else []) + layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _keras_hub():
    import keras_hub

    # The smallest stages KerasHub allows (the first must have 64 filters).
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=IMAGE_SHAPE,
    )
    head = [
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(CLASSES, name="head"),
    ]
    return _functional(head, backbone), backbone.name


# style -> () -> (model, FreezeUnfreeze's `backbone` argument)
STYLES = {
    "functional": lambda: (_functional(_layers()), "backbone_*"),
    "Sequential-with-Input": lambda: (
        keras.Sequential([keras.Input(IMAGE_SHAPE)] + _layers()),
        "backbone_*",
    ),
    "Sequential-without-Input": lambda: (keras.Sequential(_layers()), "backbone_*"),
    "subclassed": lambda: (ConvNet(), "backbone_*"),
    "KerasHub": _keras_hub,
}


def _compile(model, optimizer, request):
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=_jit_compile(request),
    )


def _jit_compile(request):
    value = request.config.getoption("--integration-jit-compile")
    return True if value == "true" else value


@pytest.fixture(autouse=True)
def _dtype_policy(request):
    keras.config.set_dtype_policy(
        request.config.getoption("--integration-dtype-policy")
    )


# ------------------------------------------------------------------ recording


class Recorder(keras.callbacks.Callback):
    """Copies the model's weights when training starts and after every epoch."""

    def __init__(self):
        super().__init__()
        self.start = None
        self.epochs = []

    def _copy(self):
        model = self.model
        return {
            "trainable": [
                keras.ops.convert_to_numpy(v) for v in model.trainable_weights
            ],
            "all": [keras.ops.convert_to_numpy(v) for v in model.weights],
        }

    def on_train_begin(self, logs=None):
        self.start = self._copy()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._copy())


def _fit(model, callbacks, epochs):
    x, y = _data()
    recorder = Recorder()
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[recorder] + callbacks,
    )
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    return recorder, losses


def _moved(before, after):
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


def _values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _assert_equal_weights(actual, expected):
    for got, want in zip(actual, expected):
        np.testing.assert_array_equal(got, want)


def _slow_weights_state(optimizer, synced, unstepped=()):
    """LookAhead/Ranger: every variable stepped (all but the paths `unstepped`)
    started its slow weights, which are finite; right after a sync (`synced`) they
    are the model's weights."""
    if not isinstance(optimizer, ktp.optimizers.LookAhead):
        return
    built = _compat.optimizer_built_variables(optimizer)
    started = keras.ops.convert_to_numpy(optimizer._started)
    stepped = [v.path not in unstepped for v in built]
    np.testing.assert_array_equal(started, np.float32(stepped))
    slow = _values(optimizer._slow_weights)
    assert all(np.isfinite(s).all() for s in slow)
    if synced:
        pairs = [(s, w) for s, w, on in zip(slow, _values(built), stepped) if on]
        _assert_equal_weights(*zip(*pairs))


# ------------------------------------------------------------------ callbacks


def _early_stopping(model, backbone, optimizer, tmp_path):
    # No epoch improves on the first by 1e9: patience 1 stops after epoch 1 and
    # the weights of epoch 0 come back.
    callback = ktp.callbacks.EarlyStopping(
        monitor="loss", patience=1, min_delta=1e9, restore_best_weights=True
    )
    recorder, losses = _fit(model, [callback], epochs=4)
    assert len(losses) == 2
    assert (callback.stop_reason, callback.stopped_epoch, callback.best_epoch) == (
        "patience",
        1,
        0,
    )
    assert callback.best == pytest.approx(losses[0])
    assert any(_moved(recorder.epochs[0]["trainable"], recorder.epochs[1]["trainable"]))
    _assert_equal_weights(_values(model.weights), recorder.epochs[0]["all"])
    _slow_weights_state(optimizer, synced=False)


def _freeze_unfreeze(model, backbone, optimizer, tmp_path):
    trainable = [v.path for v in model.trainable_weights]
    callback = ktp.callbacks.FreezeUnfreeze(
        backbone,
        freeze_epochs=1,
        backbone_learning_rate_multiplier=BACKBONE_MULTIPLIER,
    )
    recorder, _ = _fit(model, [callback], epochs=2)
    assert [v.path for v in model.trainable_weights] == trainable  # flags given back
    paths = [v.path for v in model.weights]
    start, frozen, unfrozen = (
        dict(zip(paths, w["all"])) for w in [recorder.start] + recorder.epochs
    )
    backbone_ids = {
        id(v)
        for layer in _compat.flatten_layers(model)
        if fnmatch.fnmatchcase(layer.name, backbone)
        for v in layer.weights
    }
    in_backbone = {v.path: id(v) in backbone_ids for v in model.trainable_weights}
    assert any(in_backbone.values()) and not all(in_backbone.values())
    for path, inside in in_backbone.items():
        if inside:
            assert np.array_equal(start[path], frozen[path]), f"{path} moved frozen"
        else:
            assert not np.array_equal(start[path], frozen[path]), f"{path} idle"
    backbone_paths = [p for p, inside in in_backbone.items() if inside]
    assert any(not np.array_equal(frozen[p], unfrozen[p]) for p in backbone_paths), (
        "the backbone did not train once unfrozen"
    )
    # Unfrozen at a tenth of the rate for two steps, the backbone stays close to
    # where it was (LookAhead's slow weights start from it, not from zero).
    for path in backbone_paths:
        scale = np.linalg.norm(frozen[path])
        assert np.linalg.norm(unfrozen[path] - frozen[path]) <= 0.2 * scale, path
    assert callback.unfrozen_groups == 1
    # `train_bn=False`: the backbone's BatchNormalization weights never train.
    frozen_bn = [
        v.path
        for layer in _compat.flatten_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.trainable_weights
        if in_backbone.get(v.path)
    ]
    assert frozen_bn
    for path in frozen_bn:
        assert np.array_equal(start[path], unfrozen[path]), path
    # LearningRateMultipliers around LookAhead scales its whole step: after a sync
    # the backbone holds x + m (phi - x), not phi, so only the start is checked.
    _slow_weights_state(optimizer, synced=False, unstepped=frozen_bn)


def _snapshot_checks(model, callback, recorder, optimizer):
    paths = callback.snapshot_paths
    assert [os.path.basename(p) for p in paths] == [
        "snapshot-001.keras",
        "snapshot-002.keras",
    ]
    for path, epoch in zip(paths, recorder.epochs):
        loaded = keras.saving.load_model(path, compile=False)
        _assert_equal_weights(_values(loaded.weights), epoch["all"])
    _slow_weights_state(optimizer, synced=True)


def _snapshot_float(model, backbone, optimizer, tmp_path):
    callback = ktp.callbacks.SnapshotEnsemble(tmp_path, num_snapshots=2)
    recorder, _ = _fit(model, [callback], epochs=2)
    _snapshot_checks(model, callback, recorder, optimizer)
    holder = ktp.optimizers._common.learning_rate_optimizer(model.optimizer)
    np.testing.assert_allclose(float(holder.learning_rate), LEARNING_RATE, rtol=1e-6)


def _snapshot_schedule(model, backbone, optimizer, tmp_path):
    callback = ktp.callbacks.SnapshotEnsemble(tmp_path, num_snapshots=2)
    recorder, _ = _fit(model, [callback], epochs=2)
    _snapshot_checks(model, callback, recorder, optimizer)


def _swa(model, backbone, optimizer, tmp_path):
    x, _ = _data()
    callback = ktp.callbacks.StochasticWeightAveraging(
        start_epoch=0, swa_learning_rate=LEARNING_RATE / 2, recalibration_data=x
    )
    recorder, _ = _fit(model, [callback], epochs=2)
    assert callback.averaged_epochs == 2
    averaged = [
        (a.astype(np.float64) + b) / 2
        for a, b in zip(
            recorder.epochs[0]["trainable"], recorder.epochs[1]["trainable"]
        )
    ]
    for got, want in zip(_values(model.trainable_weights), averaged):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    moving = [
        (v.path, keras.ops.convert_to_numpy(v))
        for v in model.non_trainable_weights
        if "moving" in v.path
    ]
    last = dict(zip([v.path for v in model.weights], recorder.epochs[1]["all"]))
    assert moving and any(not np.array_equal(value, last[p]) for p, value in moving)
    holder = ktp.optimizers._common.learning_rate_optimizer(model.optimizer)
    np.testing.assert_allclose(float(holder.learning_rate), LEARNING_RATE, rtol=1e-6)
    _slow_weights_state(optimizer, synced=False)


# callback -> (runner, learning rate: a float or a schedule factory)
CALLBACKS = {
    "EarlyStopping": (_early_stopping, LEARNING_RATE),
    "FreezeUnfreeze": (_freeze_unfreeze, LEARNING_RATE),
    "SnapshotEnsemble-float": (_snapshot_float, LEARNING_RATE),
    "SnapshotEnsemble-CyclicCosineDecay": (
        _snapshot_schedule,
        lambda: ktp.schedules.CyclicCosineDecay(LEARNING_RATE, cycle_steps=STEPS),
    ),
    "StochasticWeightAveraging": (_swa, LEARNING_RATE),
}


def _run(style, optimizer_name, callback_name, tmp_path, request):
    keras.utils.set_random_seed(0)
    model, backbone = STYLES[style]()
    runner, rate = CALLBACKS[callback_name]
    optimizer = OPTIMIZERS[optimizer_name](rate() if callable(rate) else rate)
    compiled = optimizer
    if runner is _freeze_unfreeze:
        # The backbone's tenth of the rate is the optimizer's (the callback checks
        # it before the first step): outermost, as JAX needs while layers are
        # frozen, around every optimizer of the matrix.
        compiled = ktp.optimizers.LearningRateMultipliers(
            optimizer,
            {layer: BACKBONE_MULTIPLIER for layer in _backbone(model, backbone)},
        )
    _compile(model, compiled, request)
    runner(model, backbone, optimizer, tmp_path)


def _backbone(model, pattern):
    """The layers with weights whose names match the backbone's pattern."""
    return [
        layer
        for layer in _compat.flatten_layers(model)
        if fnmatch.fnmatchcase(layer.name, pattern) and layer.weights
    ]


@pytest.mark.parametrize("callback_name", list(CALLBACKS))
@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
def test_optimizer_with_callback(optimizer_name, callback_name, tmp_path, request):
    _run("functional", optimizer_name, callback_name, tmp_path, request)


# (style, callback) pairs that fail, run as strict expected failures; the README's
# support matrix marks them.
UNBUILT = (
    "FreezeUnfreeze finds the backbone's weights when training starts, before a "
    "model whose weights the first step creates has any (call `model.build` first)"
)
KNOWN_FAILURES = {
    ("Sequential-without-Input", "FreezeUnfreeze"): UNBUILT,
    ("subclassed", "FreezeUnfreeze"): UNBUILT,
}


def _style_cases():
    """Each other style x each optimizer, the callbacks taken in turn."""
    names = list(CALLBACKS)
    cases = []
    for i, style in enumerate(s for s in STYLES if s != "functional"):
        for j, optimizer_name in enumerate(OPTIMIZERS):
            k = (i + j) % len(names)
            while (style, names[k]) in KNOWN_FAILURES:
                k = (k + 1) % len(names)
            cases.append((style, optimizer_name, names[k]))
    return cases


@pytest.mark.parametrize("style, optimizer_name, callback_name", _style_cases())
def test_build_style_with_optimizer(
    style, optimizer_name, callback_name, tmp_path, request
):
    _run(style, optimizer_name, callback_name, tmp_path, request)


@pytest.mark.parametrize(
    "style, callback_name",
    [
        pytest.param(*pair, marks=pytest.mark.xfail(reason=reason, strict=True))
        for pair, reason in KNOWN_FAILURES.items()
    ],
)
def test_known_failures(style, callback_name, tmp_path, request):
    _run(style, "LookAhead-Adam", callback_name, tmp_path, request)


# ---------------------------------------------------------------- augmentation

AUGMENTATIONS = {
    "RandomResizedCrop": lambda: ktp.layers.RandomResizedCrop(32, 32, seed=1),
    "RandomScaleCrop": lambda: ktp.layers.RandomScaleCrop(
        32, 32, short_side_range=(32, 48), seed=1
    ),
    "RandomAffine": lambda: ktp.layers.RandomAffine(
        rotation=0.1, translation=0.1, zoom=0.1, shear=0.1, seed=1
    ),
    "RandomLensDistortion": lambda: ktp.layers.RandomLensDistortion(seed=1),
    "PCALighting": lambda: ktp.layers.PCALighting(std=0.5, value_range=(0, 1), seed=1),
    "GeometricChain": lambda: ktp.layers.GeometricChain(
        [
            ktp.layers.RandomAffine(rotation=0.1, seed=1),
            ktp.layers.RandomResizedCrop(32, 32, seed=2),
        ]
    ),
}


def _seed_state(layer):
    return [keras.ops.convert_to_numpy(v) for v in layer.non_trainable_variables]


def _augmentation_optimizer(layer_name):
    """The optimizers taken in turn by the augmentation cases (Mixup, CutMix last)."""
    names = list(OPTIMIZERS)
    return names[(list(AUGMENTATIONS) + ["Mixup", "CutMix"]).index(layer_name) % 5]


@pytest.mark.parametrize("layer_name", list(AUGMENTATIONS))
def test_augmentation_layer_in_compiled_model(layer_name, request):
    keras.utils.set_random_seed(0)
    layer = AUGMENTATIONS[layer_name]()
    model = _functional([layer] + _layers())
    optimizer_name = _augmentation_optimizer(layer_name)
    _compile(model, OPTIMIZERS[optimizer_name](LEARNING_RATE), request)
    seeds = _seed_state(layer)
    recorder, _ = _fit(model, [], epochs=1)
    assert all(_moved(recorder.start["trainable"], recorder.epochs[0]["trainable"]))
    # The random draws ran in the compiled step (the seed state moved) and change
    # the images.
    assert any(_moved(seeds, _seed_state(layer))), "no draw in the train step"
    x, _ = _data()
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape and np.isfinite(out).all()
    assert not np.allclose(out, x)


class MixupNet(keras.Model):
    """A convnet whose train step mixes each batch first (Mixup/CutMix)."""

    def __init__(self, mixup, **kwargs):
        super().__init__(**kwargs)
        self.mixup = mixup
        self.net = _functional(_layers())

    def call(self, inputs, training=None):
        return self.net(inputs, training=training)

    def train_step(self, *args):
        if keras.backend.backend() != "jax":
            (x, y) = args[0]
            return super().train_step(self.mixup(x, y, training=True))
        # JAX: the train step is stateless; run the layer in a StatelessScope on
        # its seed state taken from (and given back to) the non-trainable state.
        state, (x, y) = args
        trainable, non_trainable, optimizer_state, metrics = state
        index = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        own = self.mixup.non_trainable_variables
        mapping = [(v, non_trainable[index[id(v)]]) for v in own]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            mixed = self.mixup(x, y, training=True)
        non_trainable = list(non_trainable)
        for v in own:
            non_trainable[index[id(v)]] = scope.get_current_value(v)
        state = (trainable, non_trainable, optimizer_state, metrics)
        return super().train_step(state, mixed)


def mixed_label_loss(y_true, y_pred):
    """Cross-entropy on the mixed labels of the train step.

    Keras's JAX trainer first builds the loss on the labels as given (class
    indices) before any train step; those are one-hot encoded for that build.
    """
    if len(y_true.shape) == 1:
        y_true = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), CLASSES)
    return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True)


def largest_share(y_true, y_pred):
    """The largest class share of each (mixed) label, averaged."""
    return keras.ops.mean(keras.ops.max(y_true, axis=-1))


@pytest.mark.parametrize("labels", ["class_indices", "one_hot"])
@pytest.mark.parametrize("kind", ["Mixup", "CutMix"])
def test_mixup_in_compiled_train_step(kind, labels, request):
    keras.utils.set_random_seed(0)
    cutmix = dict(cutmix_alpha=1.0, switch_prob=1.0) if kind == "CutMix" else {}
    mixup = ktp.layers.Mixup(alpha=1.0, num_classes=CLASSES, seed=3, **cutmix)
    model = MixupNet(mixup)
    optimizer_name = _augmentation_optimizer(kind)
    model.compile(
        OPTIMIZERS[optimizer_name](LEARNING_RATE),
        mixed_label_loss,
        metrics=[largest_share],
        jit_compile=_jit_compile(request),
    )
    x, y = _data()
    if labels == "one_hot":
        y = np.eye(CLASSES, dtype="float32")[y]
    seeds = _seed_state(mixup)
    history = model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(_moved(seeds, _seed_state(mixup))), "no draw in the train step"
    # The loss saw mixed labels: their largest class share is below 1.
    assert min(history.history["largest_share"]) < 0.99


# ------------------------------------------------------------- support matrix


def support_matrix():
    """The README's table of this tier's cases (checked by tests/test_readme_matrix)."""
    callbacks = list(CALLBACKS)
    lines = [
        "| optimizer \\ callback (functional model) | " + " | ".join(callbacks) + " |",
        "|---" * (len(callbacks) + 1) + "|",
    ]
    for name in OPTIMIZERS:
        lines.append(f"| {name} | " + " | ".join("✓" for _ in callbacks) + " |")
    lines += [
        "",
        "| building style \\ optimizer | " + " | ".join(OPTIMIZERS) + " | fails |",
        "|---" * (len(OPTIMIZERS) + 2) + "|",
        "| functional | " + " | ".join("✓ (all)" for _ in OPTIMIZERS) + " | |",
    ]
    used = {(style, name): callback for style, name, callback in _style_cases()}
    for style in (s for s in STYLES if s != "functional"):
        cells = [f"✓ ({used[style, name]})" for name in OPTIMIZERS]
        fails = [c for (st, c) in KNOWN_FAILURES if st == style]
        lines.append(
            f"| {style} | " + " | ".join(cells) + f" | {', '.join(fails)} ✗ |"
            if fails
            else f"| {style} | " + " | ".join(cells) + " | |"
        )
    lines += [
        "",
        "| augmentation layer in the compiled model / train step | optimizer | |",
        "|---|---|---|",
    ]
    for layer in list(AUGMENTATIONS) + ["Mixup", "CutMix"]:
        where = "train step, class-index and one-hot labels" if "Mix" in layer else ""
        lines.append(
            f"| {layer} | {_augmentation_optimizer(layer)} | ✓ {where}".rstrip() + " |"
        )
    return "\n".join(lines) + "\n"
