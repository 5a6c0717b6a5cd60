"""Tests for keras_trainplus.callbacks.FreezeUnfreeze."""

import warnings

import keras
import numpy as np
import pytest

from keras_trainplus import _backbone
from keras_trainplus.callbacks import FreezeUnfreeze
from keras_trainplus.optimizers import LearningRateMultipliers
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.backend import only_backends
from tests.helpers.config import assert_config_roundtrip

MODES = compile_modes()
MODE_IDS = [mode_id for mode_id, _ in MODES]


def _scaled(optimizer, multiplier=0.1, backbone="backbone"):
    """`optimizer` with the backbone's learning rate scaled, as FreezeUnfreeze's
    default `backbone_learning_rate_multiplier=0.1` asks."""
    return LearningRateMultipliers(optimizer, {backbone: multiplier})


def _numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable.value))


def _conv_model(train_step_counter=None):
    """A small conv backbone (3 named blocks with BatchNormalization) + a head."""
    blocks = []
    for i, filters in enumerate((4, 6, 8)):
        blocks += [
            keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv"),
            keras.layers.BatchNormalization(name=f"block{i}_bn"),
            keras.layers.ReLU(name=f"block{i}_relu"),
        ]
    backbone = keras.Sequential(
        [keras.Input((8, 8, 3))] + blocks + [keras.layers.GlobalAveragePooling2D()],
        name="backbone",
    )
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(3, name="head")(backbone(inputs))
    model_class = keras.Model
    if train_step_counter is not None:

        class CountingModel(keras.Model):
            def train_step(self, *args, **kwargs):
                train_step_counter.append(1)
                return super().train_step(*args, **kwargs)

        model_class = CountingModel
    return model_class(inputs, outputs), backbone


def _images(rng, n=16):
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(n,))
    return x, y


class _Snapshots(keras.callbacks.Callback):
    """Copies chosen variables at the start of fit and at every epoch end."""

    def __init__(self, variables):
        super().__init__()
        self.variables = variables
        self.epochs = []

    def on_train_begin(self, logs=None):
        self.initial = [_numpy(v) for v in self.variables]

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append([_numpy(v) for v in self.variables])


def _backbone_state(backbone):
    bn = [
        layer
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    weights = [
        v
        for layer in backbone.layers
        for v in layer.trainable_weights
        if layer not in bn
    ]
    moving = [v for layer in bn for v in (layer.moving_mean, layer.moving_variance)]
    affine = [v for layer in bn for v in (layer.gamma, layer.beta)]
    return weights, moving, affine


def _changed(before, after):
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


# ---------------------------------------------------------------- arguments


def test_config_roundtrip():
    callback = FreezeUnfreeze(
        "backbone",
        freeze_epochs=2,
        train_bn=True,
        backbone_learning_rate_multiplier=0.5,
        unfreeze_every=3,
        groups=["block0_*", ["block1_conv", "block1_bn"], "block2_*"],
    )
    restored = assert_config_roundtrip(callback)
    assert restored.groups == [
        "block0_*",
        ["block1_conv", "block1_bn"],
        "block2_*",
    ]


def test_config_roundtrip_without_multiplier():
    callback = FreezeUnfreeze("backbone", backbone_learning_rate_multiplier=None)
    assert assert_config_roundtrip(callback).backbone_learning_rate_multiplier is None


def test_config_names_a_layer_backbone():
    layer = keras.layers.Dense(2, name="encoder")
    assert FreezeUnfreeze(layer).get_config()["backbone"] == "encoder"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"freeze_epochs": -1},
            r"Argument `freeze_epochs` must be an integer >= 0\. "
            r"Received: freeze_epochs=-1",
        ),
        ({"freeze_epochs": 1.5}, r"`freeze_epochs` must be an integer"),
        (
            {"backbone_learning_rate_multiplier": 0.0},
            r"Argument `backbone_learning_rate_multiplier` must be > 0\. "
            r"Received: backbone_learning_rate_multiplier=0\.0",
        ),
        ({"backbone_learning_rate_multiplier": -0.1}, r"must be > 0"),
        ({"unfreeze_every": 0}, r"Argument `unfreeze_every` must be an integer >= 1"),
        ({"train_bn": 1}, r"Argument `train_bn` must be a bool"),
        ({"groups": ["a"], "unfreeze_every": 1}, r"at least 2 groups"),
        ({"groups": ["a", "b"]}, r"`groups` needs `unfreeze_every`"),
        ({"verbose": 3}, r"Argument `verbose` must be an integer in \[0, 1\]"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FreezeUnfreeze("backbone", **kwargs)


def test_invalid_backbone_type():
    with pytest.raises(ValueError, match=r"Argument `backbone` must be a layer"):
        FreezeUnfreeze(3)


def _fit_raises(callback, rng, message, compile_backbone_trainable=True):
    steps = []
    model, backbone = _conv_model(steps)
    backbone.trainable = compile_backbone_trainable
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _images(rng)
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    assert steps == []  # raised before the first training step


def test_unknown_layer_name_lists_close_matches(rng):
    _fit_raises(
        FreezeUnfreeze("backbon"),
        rng,
        r"no layer named 'backbon' in the model\. Close matches: \['backbone'",
    )


def test_unknown_group_name_lists_close_matches(rng):
    callback = FreezeUnfreeze(
        "backbone", unfreeze_every=1, groups=["block0_*", "blok2_conv"]
    )
    _fit_raises(
        callback, rng, r"groups\[1\]`: no layer named 'blok2_conv'.*'block2_conv'"
    )


def test_pattern_matching_nothing(rng):
    _fit_raises(
        FreezeUnfreeze("encoder_*"), rng, r"pattern 'encoder_\*' matches no layer"
    )


def test_backbone_not_part_of_model(rng):
    other = keras.layers.Dense(2, name="elsewhere")
    _fit_raises(FreezeUnfreeze(other), rng, r"'elsewhere' is not part of the model")


def test_backbone_frozen_at_compile_is_rejected(rng):
    _fit_raises(
        FreezeUnfreeze("backbone"),
        rng,
        r"the backbone has no trainable weights",
        compile_backbone_trainable=False,
    )


def test_optimizer_built_without_backbone_is_rejected(rng):
    model, backbone = _conv_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    backbone.trainable = False
    model.optimizer.build(model.trainable_variables)
    backbone.trainable = True
    x, y = _images(rng)
    with pytest.raises(
        ValueError, match=r"the optimizer was built without \d+ variables"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[FreezeUnfreeze(backbone)])


# ---------------------------------------------------------------- phases


@pytest.mark.parametrize(
    "mode, train_bn",
    [(m, False) for _, m in MODES] + [(MODES[-1][1], True)],
    ids=[f"{i}-bn_frozen" for i in MODE_IDS] + [f"{MODE_IDS[-1]}-train_bn"],
)
def test_frozen_then_unfrozen(mode, train_bn, rng):
    model, backbone = _conv_model()
    model.compile(
        _scaled(keras.optimizers.Adam(0.01)),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **mode,
    )
    weights, moving, affine = _backbone_state(backbone)
    head = model.get_layer("head").trainable_weights
    snap = _Snapshots(weights + moving + affine + head)
    x, y = _images(rng)
    callback = FreezeUnfreeze(backbone, freeze_epochs=2, train_bn=train_bn)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callback, snap])

    n_w, n_m, n_a = len(weights), len(moving), len(affine)
    frozen_end, unfrozen_end = snap.epochs[1], snap.epochs[2]
    # Frozen phase: every backbone weight and BN statistic bit-identical, head trains.
    assert not any(
        _changed(snap.initial[: n_w + n_m + n_a], frozen_end[: n_w + n_m + n_a])
    )
    assert all(_changed(snap.initial[n_w + n_m + n_a :], frozen_end[n_w + n_m + n_a :]))
    # After the unfreeze: convolution weights move; BN per train_bn.
    assert all(_changed(frozen_end[:n_w], unfrozen_end[:n_w]))
    bn_changed = _changed(
        frozen_end[n_w : n_w + n_m + n_a], unfrozen_end[n_w : n_w + n_m + n_a]
    )
    assert all(bn_changed) if train_bn else not any(bn_changed)
    # Flags are restored when fit ends.
    assert all(layer.trainable for layer in backbone.layers)
    assert len(model.trainable_variables) == len(weights) + len(affine) + len(head)


@pytest.mark.smoke
def test_smoke_fit(rng):
    model, backbone = _conv_model()
    model.compile(
        _scaled("adam"), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    weights, moving, _ = _backbone_state(backbone)
    snap = _Snapshots(weights + moving)
    x, y = _images(rng)
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[FreezeUnfreeze("backbone", freeze_epochs=1), snap],
    )
    assert not any(_changed(snap.initial, snap.epochs[0]))
    assert all(_changed(snap.epochs[0][: len(weights)], snap.epochs[1][: len(weights)]))
    assert not any(
        _changed(snap.epochs[0][len(weights) :], snap.epochs[1][len(weights) :])
    )


def _layer_changes(model, callback, epochs, rng):
    """For each epoch, the names of the backbone layers whose weights changed."""
    backbone = model.get_layer("backbone")
    layers = [layer for layer in backbone.layers if layer.weights]
    variables = [v for layer in layers for v in layer.weights]
    snap = _Snapshots(variables)
    x, y = _images(rng)
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[callback, snap])
    changes = []
    previous = snap.initial
    for current in snap.epochs:
        changed = set()
        i = 0
        for layer in layers:
            n = len(layer.weights)
            if any(_changed(previous[i : i + n], current[i : i + n])):
                changed.add(layer.name)
            i += n
        changes.append(changed)
        previous = current
    return changes


@pytest.mark.parametrize("mode", [MODES[-1][1]], ids=[MODE_IDS[-1]])
def test_gradual_unfreeze_timing_explicit_groups(mode, rng):
    model, _ = _conv_model()
    model.compile(
        _scaled("sgd"),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **mode,
    )
    callback = FreezeUnfreeze(
        "backbone",
        freeze_epochs=1,
        unfreeze_every=2,
        train_bn=True,
        groups=["block0_*", "block1_*", "block2_*"],
    )
    changes = _layer_changes(model, callback, 6, rng)
    top, middle, bottom = (
        {"block2_conv", "block2_bn"},
        {"block1_conv", "block1_bn"},
        {"block0_conv", "block0_bn"},
    )
    assert changes == [
        set(),
        top,
        top,
        top | middle,
        top | middle,
        top | middle | bottom,
    ]
    # the pooling layer matches no group: it joins the first one
    assert callback.group_names == [
        ["block0_conv", "block0_bn", "block0_relu", "global_average_pooling2d"],
        ["block1_conv", "block1_bn", "block1_relu"],
        ["block2_conv", "block2_bn", "block2_relu"],
    ]


def test_gradual_unfreeze_auto_groups(rng):
    model, _ = _conv_model()
    model.compile(
        _scaled("sgd"), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    callback = FreezeUnfreeze(
        "backbone", freeze_epochs=0, unfreeze_every=1, train_bn=True
    )
    changes = _layer_changes(model, callback, 3, rng)
    assert changes == [
        {"block2_conv", "block2_bn"},
        {"block1_conv", "block1_bn", "block2_conv", "block2_bn"},
        {
            "block0_conv",
            "block0_bn",
            "block1_conv",
            "block1_bn",
            "block2_conv",
            "block2_bn",
        },
    ]
    assert [g[0] for g in callback.group_names] == [
        "block0_conv",
        "block1_conv",
        "block2_conv",
    ]


def test_user_frozen_layer_stays_frozen(rng):
    model, backbone = _conv_model()
    backbone.get_layer("block1_conv").trainable = False
    model.compile(
        _scaled("sgd"), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    callback = FreezeUnfreeze("backbone", freeze_epochs=1, train_bn=True)
    changes = _layer_changes(model, callback, 2, rng)
    assert changes[0] == set()
    assert changes[1] == {
        "block0_conv",
        "block0_bn",
        "block1_bn",
        "block2_conv",
        "block2_bn",
    }
    assert not backbone.get_layer("block1_conv").trainable
    assert backbone.get_layer("block0_conv").trainable


def test_backbone_as_pattern_on_flat_model(rng):
    """keras.applications style: the backbone's layers live in the model itself."""
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5, name="base_dense1")(inputs)
    h = keras.layers.Dense(4, name="base_dense2")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(h))
    model.compile(_scaled("sgd", backbone="base_*"), "mse")
    base = [model.get_layer("base_dense1"), model.get_layer("base_dense2")]
    snap = _Snapshots([v for layer in base for v in layer.weights])
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    callback = FreezeUnfreeze("base_*", freeze_epochs=1)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback, snap])
    assert not any(_changed(snap.initial, snap.epochs[0]))
    assert all(_changed(snap.epochs[0], snap.epochs[1]))
    callback = FreezeUnfreeze(["base_dense1", "base_dense2"], freeze_epochs=1)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert all(layer.trainable for layer in base)


# ---------------------------------------------------------------- optimizer


def _linear_model():
    """x -> backbone Dense(3) -> head Dense(1), all linear, for exact references."""
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="backbone")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))
    return model


def _linear_grads(w1, b1, w2, b2, x, y):
    """Gradients of the mean squared error of the linear model (float64)."""
    h = x @ w1 + b1
    r = h @ w2 + b2 - y
    d = 2.0 * r / r.size
    gw2, gb2 = h.T @ d, d.sum(0)
    dh = d @ w2.T
    return x.T @ dh, dh.sum(0), gw2, gb2


def _adam_reference(params, x, y, lr, multiplier, freeze_steps, steps):
    """Keras's Adam (epsilon outside the root), backbone frozen then scaled."""
    beta_1, beta_2, eps = 0.9, 0.999, 1e-7
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = _linear_grads(*params, x, y)
        rate = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i in range(4):
            backbone = i < 2
            if backbone and t <= freeze_steps:
                continue
            m[i] += (grads[i] - m[i]) * (1 - beta_1)
            v[i] += (grads[i] ** 2 - v[i]) * (1 - beta_2)
            step = -rate * m[i] / (np.sqrt(v[i]) + eps)
            params[i] = params[i] + (multiplier * step if backbone else step)
    return params


@pytest.mark.smoke
@pytest.mark.parametrize("mode", [m for _, m in MODES], ids=MODE_IDS)
def test_adam_multiplier_and_head_moments_against_reference(mode, rng):
    """3 frozen steps, then 3 unfrozen: the head's Adam moments and step count carry
    over, the backbone's steps are `multiplier` times Adam's (slots from zero)."""
    model = _linear_model()
    model.compile(_scaled(keras.optimizers.Adam(0.05), 0.25), "mse", **mode)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    params = [_numpy(v) for v in model.trainable_variables]
    callback = FreezeUnfreeze(
        "backbone", freeze_epochs=3, backbone_learning_rate_multiplier=0.25
    )
    model.fit(
        x, y, epochs=6, batch_size=8, shuffle=False, verbose=0, callbacks=[callback]
    )
    expected = _adam_reference(
        params,
        x.astype(np.float64),
        y.astype(np.float64),
        0.05,
        0.25,
        freeze_steps=3,
        steps=6,
    )
    for variable, reference in zip(model.trainable_variables, expected):
        bound = tolerance.training_bound(reference, 6, fan_in=8, adam_lr=0.05)
        tolerance.assert_within(_numpy(variable), reference, bound)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6


@pytest.mark.smoke
@pytest.mark.parametrize("mode", [m for _, m in MODES], ids=MODE_IDS)
def test_sgd_backbone_step_is_multiplier_times_head_rate(mode, rng):
    """With plain SGD the backbone's step is exactly `-multiplier * lr * gradient`."""
    model = _linear_model()
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.1, 0.02])
    model.compile(_scaled(keras.optimizers.SGD(schedule), 0.3), "mse", **mode)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    params = [_numpy(v).astype(np.float64) for v in model.trainable_variables]
    callback = FreezeUnfreeze(
        "backbone", freeze_epochs=0, backbone_learning_rate_multiplier=0.3
    )
    model.fit(
        x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, callbacks=[callback]
    )
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    for lr in (0.1, 0.02):
        grads = _linear_grads(*params, xd, yd)
        params = [
            p - lr * (0.3 if i < 2 else 1.0) * g
            for i, (p, g) in enumerate(zip(params, grads))
        ]
    # Two SGD steps; gradients are 8-sample sums of 3- and 4-term products.
    for variable, reference in zip(model.trainable_variables, params):
        bound = tolerance.training_bound(reference, 2, fan_in=12)
        tolerance.assert_within(_numpy(variable), reference, bound)


@pytest.mark.smoke
@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "wrapped"])
def test_the_optimizer_is_left_untouched(wrapped, rng):
    """The callback reads the optimizer, never changes it: same instance state,
    same config, same multipliers before and after fit. With multiplier 1 a plain
    optimizer needs no wrapper (except under JAX, see below)."""
    if not wrapped and keras.backend.backend() == "jax":
        pytest.skip("JAX needs LearningRateMultipliers")
    model = _linear_model()
    optimizer = keras.optimizers.SGD(0.1)
    if wrapped:
        optimizer = _scaled(optimizer, 1.0)
    model.compile(optimizer, "mse")
    x = rng.normal(size=(8, 4)).astype("float32")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    before = (dict(vars(optimizer)), optimizer.get_config())
    callback = FreezeUnfreeze(
        "backbone", freeze_epochs=1, backbone_learning_rate_multiplier=1.0
    )
    model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[callback])
    assert dict(vars(optimizer)) == before[0]
    assert optimizer.get_config() == before[1]
    assert model.optimizer is optimizer


@pytest.mark.parametrize(
    "mode", [m for _, m in MODES if m.get("jit_compile")], ids=["xla"]
)
def test_mixed_precision_loss_scale_optimizer(mode, rng):
    keras.config.set_dtype_policy("mixed_float16")
    model, backbone = _conv_model()
    model.compile(
        _scaled(keras.optimizers.SGD(0.05), 0.5),
        keras.losses.SparseCategoricalCrossentropy(True),
        **mode,
    )
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    weights, moving, _ = _backbone_state(backbone)
    snap = _Snapshots(weights + moving)
    x, y = _images(rng)
    callback = FreezeUnfreeze(
        backbone, freeze_epochs=1, backbone_learning_rate_multiplier=0.5
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback, snap])
    assert not any(_changed(snap.initial, snap.epochs[0]))
    assert all(_changed(snap.epochs[0][: len(weights)], snap.epochs[1][: len(weights)]))


# ---------------------------------------------------------------- compilation


@only_backends("tensorflow", "jax")
def test_one_trace_per_phase_xla(rng):
    steps = []
    traces = []
    model, _ = _conv_model()

    class CountingModel(keras.Model):
        def train_step(self, *args, **kwargs):
            traces.append(1)  # runs at trace time only (compiled step)
            return super().train_step(*args, **kwargs)

    model = CountingModel(model.inputs, model.outputs)
    model.compile(
        _scaled("adam"),
        keras.losses.SparseCategoricalCrossentropy(True),
        jit_compile=True,
    )

    class Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    x, y = _images(rng)
    callback = FreezeUnfreeze(
        "backbone", freeze_epochs=2, unfreeze_every=2, groups=["block0_*", "block1_*"]
    )
    model.fit(x, y, epochs=6, batch_size=4, verbose=0, callbacks=[callback, Steps()])
    assert len(steps) == 24
    assert len(traces) == 3  # frozen, top group, all


# ---------------------------------------------------------------- resumption


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def _resumable_run(tmp_path, rng_seed, interrupt_at=None):
    keras.utils.set_random_seed(7)
    model, backbone = _conv_model()
    model.compile(
        _scaled(keras.optimizers.Adam(0.01), 0.5),
        keras.losses.SparseCategoricalCrossentropy(True),
    )
    x, y = _images(np.random.default_rng(rng_seed))
    flags = []

    class Flags(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            flags.append((epoch, len(self.model.trainable_variables)))

    def callbacks(extra):
        return extra + [
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
            FreezeUnfreeze(
                "backbone",
                freeze_epochs=1,
                unfreeze_every=1,
                groups=["block0_*", "block1_*", "block2_*"],
                backbone_learning_rate_multiplier=0.5,
            ),
            Flags(),
        ]

    fit = dict(epochs=4, batch_size=8, shuffle=False, verbose=0)
    if interrupt_at is not None:
        with pytest.raises(RuntimeError, match="interrupted"):
            model.fit(x, y, callbacks=callbacks([_Interrupt(interrupt_at)]), **fit)
        keras.utils.set_random_seed(7)
        model, backbone = _conv_model()  # a fresh process would rebuild the model
        model.compile(
            _scaled(keras.optimizers.Adam(0.01), 0.5),
            keras.losses.SparseCategoricalCrossentropy(True),
        )
    model.fit(x, y, callbacks=callbacks([]), **fit)
    return [_numpy(v) for v in model.weights], flags


def test_resume_after_unfreeze_with_backup_and_restore(tmp_path):
    reference, ref_flags = _resumable_run(tmp_path / "a", 0)
    resumed, flags = _resumable_run(tmp_path / "b", 0, interrupt_at=3)
    # head (2) then + 2 trainable per group (conv kernel + bias; BN frozen)
    assert ref_flags == [(0, 2), (1, 4), (2, 6), (3, 8)]
    assert flags == [(0, 2), (1, 4), (2, 6), (3, 8)]
    # Both runs are float32 Adam(0.01) over 8 steps (16 images of 8 x 8 pixels: the
    # gradients are sums over 8 * 64 terms); each may be that far from exact.
    for a, b in zip(reference, resumed):
        bound = 2 * tolerance.training_bound(a, 8, fan_in=8 * 64, adam_lr=0.01)
        tolerance.assert_within(b, a, bound)


def test_refit_after_interrupted_fit_keeps_user_flags(rng):
    model, backbone = _conv_model()
    model.compile(_scaled("sgd"), keras.losses.SparseCategoricalCrossentropy(True))
    x, y = _images(rng)
    callback = FreezeUnfreeze("backbone", freeze_epochs=1)
    with pytest.raises(RuntimeError):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[_Interrupt(1), callback])
    assert not backbone.trainable  # left frozen by the interruption
    model.fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[callback])
    assert all(layer.trainable for layer in backbone.layers)


# ---------------------------------------------------------------- backbones

BACKBONE_GROUPS = {
    # builder name: (number of inferred groups, first layer of the top group)
    "keras_cv.ResNetBackbone": (2, "v2_stack_1_block1_1_conv"),
    "keras_cv.MobileNetV3Backbone": (2, "expanded_conv_1_expand"),
    "keras_cv.CSPDarkNetBackbone": (2, "dark3_conv"),
    "keras_cv.DenseNetBackbone": (2, "conv3_block_0_0_bn"),
    "keras_cv.EfficientNetV2Backbone": (2, "block2a_"),
    "keras_hub.ResNetBackbone": (2, "stack1_block0_1_pad"),
    "keras_hub.DenseNetBackbone": (2, "stack2_block1_1_bn"),
    "keras.applications.MobileNetV3Small": (11, "expanded_conv_10_expand"),
}


@pytest.mark.parametrize("name", sorted(BACKBONE_GROUPS))
def test_backbone_groups_and_top_group_unfreeze(name, rng):
    from tests.helpers.backbones import BUILDERS

    backbone = BUILDERS[name]()
    inputs = keras.Input(backbone.input_shape[1:])
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(features))
    model.compile(
        _scaled(keras.optimizers.SGD(0.1), backbone=backbone),
        keras.losses.SparseCategoricalCrossentropy(True),
    )
    variables = backbone.weights
    snap = _Snapshots(variables)
    x = rng.normal(size=(4,) + backbone.input_shape[1:]).astype("float32")
    y = np.array([0, 1, 0, 1])
    count, top_first = BACKBONE_GROUPS[name]
    groups = _backbone.infer_groups(_backbone.backbone_units([backbone]))
    names = [[layer.name for layer in group] for group in groups]
    assert len(names) == count
    assert names[-1][0] == top_first
    assert names[0][0] == backbone.layers[0].name
    assert sum(names, []) == [layer.name for layer in backbone.layers]
    callback = FreezeUnfreeze(backbone, freeze_epochs=1, unfreeze_every=1)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[callback, snap])
    assert callback.group_names == names

    from keras_trainplus import _compat

    top = {id(v) for n in names[-1] for v in backbone.get_layer(n).weights}
    batch_norm = {
        id(v)
        for layer in _compat.flatten_layers(backbone)
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.weights
    }
    assert not any(_changed(snap.initial, snap.epochs[0]))  # frozen epoch
    moved = _changed(snap.epochs[0], snap.epochs[1])
    for variable, did_move in zip(variables, moved):
        if did_move:
            assert id(variable) in top and id(variable) not in batch_norm, variable.path
    assert any(moved)


# ---------------------------------------------------------------- keras_trainplus optimizers, schedules


def _lookahead_sgd_reference(
    params, x, y, rates, multiplier, freeze_steps, sync_period, alpha
):
    """SGD inside LookAhead; the backbone is frozen, then its fast steps are scaled."""
    fast = [p.astype(np.float64) for p in params]
    slow = [p.copy() for p in fast]
    for t, lr in enumerate(rates, start=1):
        grads = _linear_grads(*fast, x, y)
        training = [i for i in range(4) if i >= 2 or t > freeze_steps]
        for i in training:
            fast[i] = fast[i] - lr * (multiplier if i < 2 else 1.0) * grads[i]
        if t % sync_period == 0:
            for i in training:
                slow[i] = slow[i] + alpha * (fast[i] - slow[i])
                fast[i] = slow[i].copy()
    return fast


_COMPILED = [(i, m) for i, m in MODES if not m.get("run_eagerly")]


@pytest.mark.parametrize(
    "mode, nesting",
    [(m, n) for _, m in _COMPILED for n in ("inside", "inside-and-around")],
    ids=[f"{i}-{n}" for i, _ in _COMPILED for n in ("inside", "inside-and-around")],
)
def test_lookahead_with_schedule_against_reference(mode, nesting, rng):
    """LookAhead(LearningRateMultipliers(SGD)) with a keras_trainplus warm-up +
    cosine schedule: the fast steps of the backbone are scaled, its slow weights
    follow, the head's slow weights and the sync counter carry over the unfreeze.
    Under JAX the frozen phase needs the wrapper outermost too: a second one
    without multipliers around LookAhead."""
    if nesting == "inside" and keras.backend.backend() == "jax":
        pytest.skip("JAX needs LearningRateMultipliers outermost")
    from keras_trainplus.optimizers import LookAhead
    from keras_trainplus.schedules import CosineDecay
    from keras_trainplus.schedules import WarmUp

    model = _linear_model()
    schedule = WarmUp(
        CosineDecay(0.1, decay_steps=6, final_learning_rate=0.01), warmup_steps=2
    )
    optimizer = LookAhead(
        _scaled(keras.optimizers.SGD(schedule), 0.2), sync_period=3, slow_step_size=0.5
    )
    if nesting == "inside-and-around":
        optimizer = LearningRateMultipliers(optimizer, {})
    model.compile(optimizer, "mse", **mode)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    params = [_numpy(v) for v in model.trainable_variables]
    callback = FreezeUnfreeze(
        "backbone", freeze_epochs=4, backbone_learning_rate_multiplier=0.2
    )
    model.fit(
        x, y, epochs=8, batch_size=8, shuffle=False, verbose=0, callbacks=[callback]
    )

    def rate(t):  # the schedule's formulas, written out
        if t < 2:
            return 0.1 * t / 2
        s = min(t - 2, 6)
        return 0.01 + (0.1 - 0.01) * (1 + np.cos(np.pi * s / 6)) / 2

    expected = _lookahead_sgd_reference(
        params,
        x.astype(np.float64),
        y.astype(np.float64),
        [rate(t) for t in range(8)],
        0.2,
        freeze_steps=4,
        sync_period=3,
        alpha=0.5,
    )
    # Eight SGD steps (gradients as in the SGD test above, rates off by the
    # schedule's 8 units) and two syncs, which only average.
    for variable, reference in zip(model.trainable_variables, expected):
        bound = tolerance.training_bound(reference, 8, fan_in=12 + 8)
        tolerance.assert_within(_numpy(variable), reference, bound)


@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "mixed_float16"])
def test_ranger(mixed, rng):
    from keras_trainplus.optimizers import Ranger

    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    model, backbone = _conv_model()
    model.compile(
        _scaled(Ranger(learning_rate=0.01)),
        keras.losses.SparseCategoricalCrossentropy(True),
    )
    weights, moving, _ = _backbone_state(backbone)
    snap = _Snapshots(weights + moving)
    x, y = _images(rng)
    callback = FreezeUnfreeze(backbone, freeze_epochs=1)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback, snap])
    assert not any(_changed(snap.initial, snap.epochs[0]))
    assert all(_changed(snap.epochs[0][: len(weights)], snap.epochs[1][: len(weights)]))
    assert not any(
        _changed(snap.epochs[0][len(weights) :], snap.epochs[1][len(weights) :])
    )
    for variable in model.weights + model.optimizer.variables:
        assert np.all(np.isfinite(_numpy(variable).astype("float64"))), variable.path


# ---------------------------------------------------------------- private Keras hooks


def test_compat_flatten_layers_and_optimizer_built_variables():
    from keras_trainplus import _compat

    model, backbone = _conv_model()
    names = [layer.name for layer in _compat.flatten_layers(model)]
    assert names[0] == model.name
    assert {"backbone", "block1_bn", "head"} <= set(names)
    assert names.index("backbone") < names.index("block1_bn")
    optimizer = keras.optimizers.Adam()
    assert _compat.optimizer_built_variables(optimizer) is None
    head = model.get_layer("head").trainable_weights
    optimizer.build(head)
    assert [id(v) for v in _compat.optimizer_built_variables(optimizer)] == [
        id(v) for v in head
    ]


@only_backends("jax")
def test_jax_refuses_ema_optimizer(rng):
    model, _ = _conv_model()
    model.compile(
        LearningRateMultipliers(
            keras.optimizers.Adam(), {"backbone": 0.1}, use_ema=True
        ),
        keras.losses.SparseCategoricalCrossentropy(True),
    )
    x, y = _images(rng)
    with pytest.raises(
        ValueError, match=r"does not support optimizers with `use_ema=True`"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[FreezeUnfreeze("backbone")])


# ---------------------------------------------------------------- the optimizer


def test_a_plain_optimizer_with_a_multiplier_is_refused(rng):
    model, _ = _conv_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    x, y = _images(rng)
    if keras.backend.backend() == "jax":
        message = (
            r"FreezeUnfreeze under JAX needs keras_trainplus\.optimizers\."
            r"LearningRateMultipliers as the model's optimizer \(inside Keras's "
            r"LossScaleOptimizer, if any\).*Compile with LearningRateMultipliers\("
            r"<your Adam>, \{backbone: multiplier\}\)"
        )
    else:
        message = (
            r"FreezeUnfreeze\(backbone_learning_rate_multiplier=0\.1\): the optimizer "
            r"trains 12 of the backbone's 12 weights at another multiple of the "
            r"learning rate \(e\.g\. \[\('backbone/block0_conv/kernel', 1\.0\).*"
            r"compile with keras_trainplus\.optimizers\.LearningRateMultipliers\("
            r"optimizer, \{backbone: 0\.1\}\)"
        )
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[FreezeUnfreeze("backbone")])


def test_multiplier_none_takes_the_optimizers_multipliers(rng):
    from keras_trainplus.optimizers import layer_decay

    model, backbone = _conv_model()
    decayed = layer_decay(backbone, 0.5)
    model.compile(
        LearningRateMultipliers("sgd", decayed),
        keras.losses.SparseCategoricalCrossentropy(True),
    )
    x, y = _images(rng)
    with pytest.raises(ValueError, match=r"trains 12 of the backbone's 12 weights"):
        model.fit(x, y, verbose=0, callbacks=[FreezeUnfreeze(backbone)])
    callback = FreezeUnfreeze(
        backbone, unfreeze_every=1, backbone_learning_rate_multiplier=None
    )
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    assert callback.unfrozen_groups == 1


@only_backends("jax")
def test_jax_needs_the_wrapper_outermost(rng):
    from keras_trainplus.optimizers import LookAhead

    model, _ = _conv_model()
    model.compile(
        LookAhead(_scaled("adam")), keras.losses.SparseCategoricalCrossentropy(True)
    )
    x, y = _images(rng)
    with pytest.raises(ValueError, match=r"LearningRateMultipliers\(<your LookAhead>"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[FreezeUnfreeze("backbone")])


def test_multi_optimizer_is_refused(rng):
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer needs Keras 3.15")
    model, _ = _conv_model()
    optimizer = keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(
            keras.optimizers.Adam(), {"backbone/.*": keras.optimizers.Adam(1e-4)}
        )
    )
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(True))
    x, y = _images(rng)
    callback = FreezeUnfreeze("backbone", backbone_learning_rate_multiplier=None)
    with pytest.raises(
        ValueError,
        match=r"FreezeUnfreeze does not support keras\.optimizers\.MultiOptimizer: "
        r"while layers are frozen Keras passes the optimizer only the trainable "
        r"variables, and MultiOptimizer requires all the variables it was built on",
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])


class _KeyboardInterrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after `steps` training steps, as Ctrl-C would."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            raise KeyboardInterrupt


@pytest.mark.parametrize("mode", [m for _, m in MODES], ids=MODE_IDS)
def test_interrupted_fit_leaves_nothing_on_the_optimizer(mode, rng):
    """Ctrl-C in the middle of an epoch (Keras skips `on_train_end`): a following
    plain fit trains exactly as a model that never saw the callback, given the same
    weights and optimizer state."""

    def compiled():
        keras.utils.set_random_seed(5)
        model, _ = _conv_model()
        model.compile(
            _scaled(keras.optimizers.SGD(0.05, momentum=0.9), 0.01),
            keras.losses.SparseCategoricalCrossentropy(True),
            **mode,
        )
        return model

    x, y = _images(rng, 32)
    model = compiled()
    callback = FreezeUnfreeze(
        "backbone",
        freeze_epochs=0,
        train_bn=True,
        backbone_learning_rate_multiplier=0.01,
    )
    fit = dict(batch_size=8, shuffle=False, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, callbacks=[callback, _KeyboardInterrupt(6)], **fit)
    chain = [model.optimizer, model.optimizer.optimizer]
    assert not any({"apply", "stateless_apply"} & set(vars(o)) for o in chain)
    twin = compiled()
    twin.optimizer.build(twin.trainable_variables)
    twin.set_weights(model.get_weights())
    twin.optimizer.set_weights(
        [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    )
    model.fit(x, y, epochs=1, **fit)
    twin.fit(x, y, epochs=1, **fit)
    # Both compile the same train step (same model code, optimizer configuration and
    # trainable variables) and run it on the same weights, state and batches, so
    # they agree bit for bit unless the interrupted fit left something behind.
    for got, want in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_checkpoint_saved_while_frozen(tmp_path, rng):
    """ModelCheckpoint during the frozen epochs saves the callback's flags: loading
    that file and fitting with the callback fails with the steps to resume, and
    those steps resume exactly."""
    x, y = _images(rng)
    path = str(tmp_path / "frozen.keras")

    def compiled():
        keras.utils.set_random_seed(7)
        model, _ = _conv_model()
        model.compile(
            _scaled(keras.optimizers.Adam(0.01)),
            keras.losses.SparseCategoricalCrossentropy(True),
        )
        return model

    def fit(model, epochs, initial_epoch=0, extra=()):
        callback = FreezeUnfreeze("backbone", freeze_epochs=2)
        model.fit(
            x,
            y,
            epochs=epochs,
            initial_epoch=initial_epoch,
            batch_size=8,
            shuffle=False,
            verbose=0,
            callbacks=[callback, *extra],
        )

    straight = compiled()
    fit(straight, 4)
    model = compiled()
    fit(model, 1, extra=[keras.callbacks.ModelCheckpoint(path)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the optimizer state does not fit
        reloaded = keras.saving.load_model(path)
    with pytest.raises(
        ValueError,
        match=r"A model saved while FreezeUnfreeze had the backbone frozen.*"
        r"`model\.optimizer\.build\(model\.trainable_variables\)`, "
        r"`model\.load_weights\(path\)`",
    ):
        fit(reloaded, 4, initial_epoch=1)
    resumed = compiled()
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(path)
    fit(resumed, 4, initial_epoch=1)
    # The same compiled steps from the same weights, optimizer state and batches as
    # the straight run's last 3 epochs: the same kernels, bit for bit.
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(got, want)


@only_backends("tensorflow", "jax")
def test_gradual_unfreezing_with_layer_decay_on_a_keras_hub_backbone(rng):
    """A KerasHub ResNet under `jit_compile=True`: the top group unfreezes first; once
    all are unfrozen, one SGD step moves each backbone weight by its group's
    `decay**i` times the step of the same model trained without multipliers."""
    from keras_trainplus.optimizers import layer_decay
    from tests.helpers.backbones import keras_hub_resnet

    def build(multipliers):
        keras.utils.set_random_seed(3)
        backbone = keras_hub_resnet()
        inputs = keras.Input(backbone.input_shape[1:])
        features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, name="head")(features))
        model.compile(
            LearningRateMultipliers(keras.optimizers.SGD(0.05), multipliers(backbone)),
            keras.losses.SparseCategoricalCrossentropy(True),
            jit_compile=True,
        )
        return model, backbone

    model, backbone = build(lambda b: layer_decay(b, 0.5))
    x = rng.normal(size=(8,) + backbone.input_shape[1:]).astype("float32")
    y = rng.integers(0, 2, size=(8,))

    def fit(model, epochs, initial_epoch=0, extra=()):
        callback = FreezeUnfreeze(
            model.layers[1],
            freeze_epochs=1,
            unfreeze_every=1,
            backbone_learning_rate_multiplier=None,
        )
        model.fit(
            x,
            y,
            epochs=epochs,
            initial_epoch=initial_epoch,
            batch_size=8,
            verbose=0,
            callbacks=[callback, *extra],
        )
        return callback

    variables = [v for v in backbone.weights if v.trainable]
    snap = _Snapshots(variables)
    callback = fit(model, 2, extra=[snap])
    top = {
        id(v) for n in callback.group_names[-1] for v in backbone.get_layer(n).weights
    }
    assert not any(_changed(snap.initial, snap.epochs[0]))
    moved = _changed(snap.epochs[0], snap.epochs[1])
    assert any(moved)
    assert all(id(v) in top for v, m in zip(variables, moved) if m)

    twin, twin_backbone = build(lambda b: {})
    twin.set_weights(model.get_weights())
    before = [_numpy(v) for v in variables]
    fit(model, 3, initial_epoch=2)
    fit(twin, 3, initial_epoch=2)
    multipliers = dict((id(v), m) for v, m in model.optimizer.get_multipliers())
    assert {round(multipliers[id(v)], 6) for v in variables} == {0.5, 1.0}
    twin_variables = [v for v in twin_backbone.weights if v.trainable]
    # One SGD step x - (m lr) g against x + m (x_twin - x) with x_twin = x - lr g:
    # the two updates round once each at the weights' scale, the rates' products
    # and the difference x_twin - x once more; the gradient (the same network on
    # the same batch, compiled into two programs that may fuse it differently) is
    # off by a few units of the step, which is far below the weights' scale.
    for variable, twin_variable, start in zip(variables, twin_variables, before):
        m = multipliers[id(variable)]
        expected = start + m * (_numpy(twin_variable) - start)
        tolerance.assert_close(
            _numpy(variable), expected, ulps=4, scale=start, err_msg=variable.path
        )
