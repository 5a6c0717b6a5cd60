"""LearningRateMultipliers against float64 references and plain Keras optimizers.

The two parameters of `optim.Quadratic` have independent gradients, so each one's
trajectory under the wrapper must equal the inner optimizer's at that parameter's
scaled rate: a float64 reference steps each parameter on its own at
`multiplier * schedule(t)`, and plain Keras optimizers run with the scaled schedule.
"""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers import optim
from tests.helpers import tolerance
from tests.helpers.backend import BACKEND
from tests.helpers.backend import compile_modes
from tests.helpers.backend import function_modes
from tests.test_lookahead import keras_adam_rule
from tests.test_lookahead import lookahead_rule
from tests.test_lookahead import momentum_rule
from tests.test_nesterov import nesterov_rule
from tests.test_radam import radam_rule
from tests.test_ranger import ranger_rule

LR, DECAY_STEPS, DECAY_RATE = 0.05, 8, 0.5
MODES = compile_modes()
MODE_IDS = [mode_id for mode_id, _ in MODES]
# (multiplier of p0, default for p1): p0 gets the key ["p0"], p1 the default.
P0, DEFAULT = 0.1, 0.5


def schedule():
    return keras.optimizers.schedules.ExponentialDecay(LR, DECAY_STEPS, DECAY_RATE)


def rate(t):
    """The schedule at step `t` (counted from 1; Keras evaluates it at t - 1)."""
    return LR * DECAY_RATE ** ((t - 1) / DECAY_STEPS)


class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule times a constant: the plain optimizer at a scaled rate."""

    def __init__(self, inner, factor):
        self.inner, self.factor = inner, factor

    def __call__(self, step):
        return self.inner(step) * self.factor


def sgd_rule(lr):
    return momentum_rule(lr, 0.0)


def decayed(rule, weight_decay):
    """Keras's decoupled weight decay `x <- x - lr wd x` before the update."""

    def factory(lr):
        inner = rule(lr)

        def update(t, params, grads, state):
            params = [p - lr * weight_decay * p for p in params]
            return inner(t, params, grads, state)

        return update

    return factory


def rmsprop_rule(lr, rho=0.9, momentum=0.0, eps=1e-7):
    def update(t, params, grads, state):
        velocity, moment = state or ([np.zeros_like(p) for p in params],) * 2
        velocity = [rho * v + (1 - rho) * g * g for v, g in zip(velocity, grads)]
        increment = [lr * g / np.sqrt(v + eps) for g, v in zip(grads, velocity)]
        moment = [momentum * m + i for m, i in zip(moment, increment)]
        return [p - m for p, m in zip(params, moment)], (velocity, moment)

    return update


def adagrad_rule(lr, initial=0.1, eps=1e-7):
    def update(t, params, grads, accumulators):
        accumulators = accumulators or [np.full_like(p, initial) for p in params]
        accumulators = [a + g * g for a, g in zip(accumulators, grads)]
        params = [
            p - lr * g / np.sqrt(a + eps)
            for p, g, a in zip(params, grads, accumulators)
        ]
        return params, accumulators

    return update


def lion_rule(lr, b1=0.9, b2=0.99):
    def update(t, params, grads, m):
        m = m or [np.zeros_like(p) for p in params]
        params = [
            p - lr * np.sign(b1 * mi + (1 - b1) * g)
            for p, mi, g in zip(params, m, grads)
        ]
        return params, [b2 * mi + (1 - b2) * g for mi, g in zip(m, grads)]

    return update


# name: (Keras optimizer for a learning rate or schedule, float64 rule for a rate)
CASES = {
    "sgd": (keras.optimizers.SGD, sgd_rule),
    "momentum": (
        lambda lr: keras.optimizers.SGD(lr, momentum=0.9),
        lambda lr: momentum_rule(lr, 0.9),
    ),
    "nesterov": (
        lambda lr: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
        lambda lr: nesterov_rule(lr, 0.9),
    ),
    "adam": (keras.optimizers.Adam, keras_adam_rule),
    "adamw": (
        lambda lr: keras.optimizers.AdamW(lr, weight_decay=0.2),
        decayed(keras_adam_rule, 0.2),
    ),
    "rmsprop": (keras.optimizers.RMSprop, rmsprop_rule),
    "rmsprop-momentum": (
        lambda lr: keras.optimizers.RMSprop(lr, momentum=0.8),
        lambda lr: rmsprop_rule(lr, momentum=0.8),
    ),
    "adagrad": (keras.optimizers.Adagrad, adagrad_rule),
    "lion": (  # a sign step: a tenth of the rate
        lambda lr: keras.optimizers.Lion(Scaled(lr, 0.1)),
        lambda lr: lion_rule(lr * 0.1),
    ),
    "radam": (ktp.optimizers.RAdam, radam_rule),
    "ktp-nesterov": (
        lambda lr: ktp.optimizers.Nesterov(lr, momentum=0.9),
        lambda lr: nesterov_rule(lr, 0.9),
    ),
}


def per_parameter(rule, rates):
    """Steps each parameter with `rule(lr)` at its own rate `rates(t)[i]`."""

    def update(t, params, grads, state):
        state = state or [None] * len(params)
        steps = [
            rule(lr)(t, [p], [g], s)
            for p, g, s, lr in zip(params, grads, state, rates(t))
        ]
        return [p[0] for p, _ in steps], [s for _, s in steps]

    return update


def wrapped(inner, multipliers=((["p0"], P0),), default=DEFAULT, **kwargs):
    return ktp.optimizers.LearningRateMultipliers(
        inner, list(multipliers), default, **kwargs
    )


def scaled_rates(t):
    return [P0 * rate(t), DEFAULT * rate(t)]


@pytest.mark.smoke
@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize("name", sorted(CASES))
def test_trajectory_matches_float64_reference(name, mode):
    make, rule = CASES[name]
    problem = optim.Quadratic()
    got = optim.keras_trajectory(wrapped(make(schedule())), problem, 30, mode)
    reference = per_parameter(rule, scaled_rates)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, 30)
    )


@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_plain_keras_optimizer_at_the_scaled_rate(name, mode):
    """Each parameter's trajectory is the plain optimizer's at that parameter's rate.

    Eagerly the two run the same kernels one by one on the same float32 operands:
    the rate `float32(lr_t) * float32(m)` (the wrapper's product with its stored
    multiplier, the `Scaled` schedule's with its constant), then the same
    `update_step` (and AdamW's decay, in the same order), so they agree bit for
    bit. Compiled, XLA and Grappler fuse the rate into the update differently in
    the two programs (constant folding, fused multiply-add), one rounding apart:
    both are then held to the float64 reference of that rule.
    """
    make, rule = CASES[name]
    problem = optim.Quadratic()
    got = optim.keras_trajectory(wrapped(make(schedule())), problem, 30, mode)
    p0 = optim.keras_trajectory(make(Scaled(schedule(), P0)), problem, 30, mode)
    p1 = optim.keras_trajectory(make(Scaled(schedule(), DEFAULT)), problem, 30, mode)
    plain = [[a[0], b[1]] for a, b in zip(p0, p1)]
    if mode == "eager":
        optim.assert_trajectories_equal(got, plain)
        return
    reference = optim.reference_trajectory(
        per_parameter(rule, scaled_rates), problem, 30
    )
    optim.assert_trajectories_close(got, reference)
    optim.assert_trajectories_close(plain, reference)


@pytest.mark.parametrize("mode", function_modes())
@pytest.mark.parametrize("name", ["momentum", "rmsprop-momentum", "adamw"])
def test_changing_multipliers_is_exact_with_rate_dependent_slots(name, mode):
    """SGD's velocity accumulates `lr * g`: a new multiplier applies to the new
    gradients only, as a per-variable learning rate does (a step scaled after the
    fact would rescale the whole velocity). No retracing."""
    make, rule = CASES[name]
    problem = optim.Quadratic()

    def change(t, optimizer):
        if t == 13:
            optimizer.set_multipliers([(["p0"], 1.0)], default=0.2)

    got = optim.keras_trajectory(wrapped(make(schedule())), problem, 24, mode, change)

    def rates(t):
        return scaled_rates(t) if t < 13 else [rate(t), 0.2 * rate(t)]

    reference = optim.reference_trajectory(per_parameter(rule, rates), problem, 24)
    optim.assert_trajectories_close(got, reference)


def scaled_step(rule, multipliers):
    """The step `rule` takes, scaled per parameter: x + m (x_rule - x)."""

    def update(t, params, grads, state):
        stepped, state = rule(t, params, grads, state)
        return [p + m * (s - p) for p, s, m in zip(params, stepped, multipliers)], state

    return update


@pytest.mark.parametrize("mode", function_modes())
def test_inside_lookahead_scales_the_fast_steps(mode):
    problem = optim.Quadratic()
    optimizer = ktp.optimizers.LookAhead(wrapped(keras.optimizers.Adam(schedule())), 4)
    got = optim.keras_trajectory(optimizer, problem, 24, mode)
    inner = per_parameter(keras_adam_rule, scaled_rates)
    reference = lookahead_rule(inner, problem.initial, 4, 0.5)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, 24)
    )


@pytest.mark.parametrize("mode", function_modes())
def test_around_lookahead_scales_its_whole_step(mode):
    problem = optim.Quadratic()
    inner = ktp.optimizers.LookAhead(keras.optimizers.SGD(LR, momentum=0.5), 3)
    got = optim.keras_trajectory(wrapped(inner), problem, 18, mode)
    lookahead = lookahead_rule(momentum_rule(LR, 0.5), problem.initial, 3, 0.5)
    reference = scaled_step(lookahead, [P0, DEFAULT])
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, 18)
    )


@pytest.mark.parametrize("mode", function_modes())
def test_around_ranger_scales_its_whole_step(mode):
    """Ranger builds its own RAdam, so the wrapper goes around it (or inside a
    `LookAhead(LearningRateMultipliers(RAdam(...)))`, Ranger without gradient
    centralization, as in `test_inside_lookahead_scales_the_fast_steps`)."""
    problem = optim.Quadratic()
    kwargs = dict(learning_rate=0.01, beta_1=0.95, beta_2=0.99, epsilon=1e-5)
    inner = ktp.optimizers.Ranger(**kwargs, sync_period=4, slow_step_size=0.5)
    got = optim.keras_trajectory(wrapped(inner), problem, 24, mode)
    ranger = ranger_rule(problem, 0.01, 0.95, 0.99, 1e-5, 4, 0.5)
    reference = scaled_step(ranger, [P0, DEFAULT])
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, 24)
    )


@pytest.mark.smoke
@pytest.mark.parametrize("mode", function_modes())
def test_around_loss_scale_optimizer(mode):
    """LossScaleOptimizer inside: Adam's step is proportional to the rate, so the
    scaled step equals Adam at the scaled rate."""
    problem = optim.Quadratic()
    inner = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(schedule()), initial_scale=1.0
    )
    got = optim.keras_trajectory(wrapped(inner), problem, 20, mode)
    reference = per_parameter(keras_adam_rule, scaled_rates)
    optim.assert_trajectories_close(
        got, optim.reference_trajectory(reference, problem, 20)
    )


def nadam_rule(lr, b1=0.9, b2=0.999, eps=1e-7):
    """Keras's Nadam: Dozat's momentum schedule `u_t = b1 (1 - 0.96^t / 2)`."""

    def update(t, params, grads, state):
        if state is None:
            zeros = [np.zeros_like(p) for p in params]
            state = (zeros, zeros, np.ones((), t.dtype))
        m, v, u_product = state
        u_t = b1 * (1 - 0.5 * 0.96**t)
        u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product = u_product * u_t
        m = [mi + (g - mi) * (1 - b1) for mi, g in zip(m, grads)]
        v = [vi + (g * g - vi) * (1 - b2) for vi, g in zip(v, grads)]
        params = [
            p
            - (u_next * mi / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product))
            * lr
            / (np.sqrt(vi / (1 - b2**t)) + eps)
            for p, mi, vi, g in zip(params, m, v, grads)
        ]
        return params, (m, v, u_product)

    return update


@pytest.mark.parametrize("mode", function_modes())
def test_around_nadam_equals_nadam_at_the_scaled_rate(mode):
    """Nadam also computes in `_backend_update_step`, so the wrapper scales its step
    `x + m (x_nadam - x)`; Nadam's step is proportional to the rate and its slots do
    not depend on it, so that is Nadam at the scaled rate: the wrapper and plain
    Nadam at each parameter's rate are held to the same float64 reference."""
    problem = optim.Quadratic()
    optimizer = wrapped(keras.optimizers.Nadam(schedule()))
    assert not optimizer._scales_rate
    got = optim.keras_trajectory(optimizer, problem, 20, mode)
    make = keras.optimizers.Nadam
    p0 = optim.keras_trajectory(make(Scaled(schedule(), P0)), problem, 20, mode)
    p1 = optim.keras_trajectory(make(Scaled(schedule(), DEFAULT)), problem, 20, mode)
    reference = optim.reference_trajectory(
        per_parameter(nadam_rule, scaled_rates), problem, 20
    )
    optim.assert_trajectories_close(got, reference)
    optim.assert_trajectories_close([[a[0], b[1]] for a, b in zip(p0, p1)], reference)


# ---------------------------------------------------------------- models, fit


def _model(seed=3):
    """A functional model around a nested Sequential "backbone" with BatchNorm."""
    keras.utils.set_random_seed(seed)
    backbone = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, name="b1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(8, activation="tanh", name="b2"),
        ],
        name="backbone",
    )
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(1, name="head")(backbone(inputs))
    return keras.Model(inputs, outputs), backbone


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, np.sin(x[:, :1] + x[:, 1:2]).astype("float32")


def _numpy(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


class _SetMultipliers(keras.callbacks.Callback):
    def __init__(self, epoch, multipliers, default=None):
        super().__init__()
        self.epoch, self.multipliers, self.default = epoch, multipliers, default

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.optimizer.set_multipliers(self.multipliers, self.default)


class TracedModel(keras.Model):
    """Counts how often `train_step` is traced (compiled modes)."""

    traces = 0

    def train_step(self, *args, **kwargs):
        type(self).traces += 1
        return super().train_step(*args, **kwargs)


@pytest.mark.parametrize("mode", [{"jit_compile": True}, {"jit_compile": False}])
def test_set_multipliers_from_a_callback_does_not_retrace(mode):
    if BACKEND != "tensorflow" and not mode["jit_compile"]:
        pytest.skip("one compiled mode outside TensorFlow")
    model, backbone = _model()
    model = TracedModel(model.inputs, model.outputs)
    TracedModel.traces = 0
    optimizer = ktp.optimizers.LearningRateMultipliers(
        keras.optimizers.SGD(0.1), {"b1": 0.5}
    )
    model.compile(optimizer, "mse", **mode)
    x, y = _data()
    b1 = backbone.get_layer("b1").kernel
    moved, traces = [], []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = _numpy([b1])[0]

        def on_epoch_end(self, epoch, logs=None):
            moved.append(not np.array_equal(self.before, _numpy([b1])[0]))
            traces.append(TracedModel.traces)

    freeze = _SetMultipliers(1, {"b1": 0.0})
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[freeze, Watch()])
    assert moved == [True, False, False]
    assert traces[0] > 0 and traces == traces[:1] * 3  # no trace after the first epoch


@pytest.mark.parametrize("backend_mode", [m for _, m in MODES], ids=MODE_IDS)
def test_layers_frozen_part_of_the_time(backend_mode):
    """Under JAX, Keras's trainer passes only the trainable variables; the wrapper
    updates that subset (a plain Keras optimizer refuses it), and the frozen
    layer's weights and slots stay put."""
    model, backbone = _model()
    model.compile(
        ktp.optimizers.LearningRateMultipliers(keras.optimizers.Adam(0.01), {}),
        "mse",
        **backend_mode,
    )
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    frozen = backbone.get_layer("b1")
    frozen.trainable = False
    slots = [v for v in model.optimizer.optimizer.variables if "b1" in v.path]
    before = _numpy(frozen.weights + slots)
    others = _numpy([model.get_layer("head").kernel])
    model.make_train_function(force=True)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for got, want in zip(_numpy(frozen.weights + slots), before):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(_numpy([model.get_layer("head").kernel])[0], others[0])
    frozen.trainable = True
    model.make_train_function(force=True)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(_numpy([frozen.kernel])[0], before[0])


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's trainer calls stateless_apply")
def test_jax_subset_equals_stateful_apply_on_the_subset():
    values = [np.full((2, 3), 1.0), np.full((4,), 2.0), np.full((3,), 3.0)]
    grads = [np.full_like(v, 0.5, dtype="float32") for v in values]

    def fresh():
        variables = [keras.Variable(v.astype("float32")) for v in values]
        optimizer = ktp.optimizers.LearningRateMultipliers(
            keras.optimizers.Adam(0.1), [([variables[2].path], 0.25)]
        )
        optimizer.build(variables)
        return variables, optimizer

    variables, optimizer = fresh()
    variables[1].trainable = False
    state = [v.value for v in optimizer.variables]
    new_values, new_state = optimizer.stateless_apply(
        state, [grads[0], grads[2]], [variables[0].value, variables[2].value]
    )
    twins, twin_optimizer = fresh()
    twin_optimizer.apply([grads[0], grads[2]], [twins[0], twins[2]])
    for got, want in zip(new_values, _numpy([twins[0], twins[2]])):
        np.testing.assert_array_equal(np.asarray(got), want)
    for got, want in zip(new_state, _numpy(twin_optimizer.variables)):
        np.testing.assert_array_equal(np.asarray(got), want)
    with pytest.raises(ValueError, match=r"received 1 variables; it was built on 3"):
        optimizer.stateless_apply(state, [grads[1]], [variables[1].value])
    ema = ktp.optimizers.LearningRateMultipliers(
        keras.optimizers.SGD(0.1), {}, use_ema=True
    )
    ema.build(variables)
    with pytest.raises(ValueError, match=r"`use_ema=True` under JAX"):
        ema.stateless_apply(
            [v.value for v in ema.variables],
            [grads[0], grads[2]],
            [variables[0].value, variables[2].value],
        )


def _fit(model, x, y, epochs, **kwargs):
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, **kwargs)


@pytest.mark.parametrize("mode", [m for _, m in MODES], ids=MODE_IDS)
@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        lambda: ktp.optimizers.LookAhead(keras.optimizers.Adam(0.01), 3),
    ],
    ids=["momentum", "around-lookahead"],
)
def test_save_and_resume_equals_straight_training(make, mode, tmp_path):
    """Multipliers changed during training are saved with the optimizer state; the
    reloaded model (whose nested Sequential comes back with shorter variable
    paths) resumes with them exactly."""
    x, y = _data(40)

    def compiled():
        model, backbone = _model()
        optimizer = ktp.optimizers.LearningRateMultipliers(
            make(), [(backbone, 0.3), ("head", 2.0)]
        )
        model.compile(optimizer, "mse", **mode)
        return model

    change = _SetMultipliers(1, [("b2", 0.1), ("*/kernel", 0.7)])
    straight = compiled()
    _fit(straight, x, y, 3, callbacks=[change])
    model = compiled()
    _fit(model, x, y, 2, callbacks=[change])
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.optimizer, ktp.optimizers.LearningRateMultipliers)
    assert restored.jit_compile == straight.jit_compile
    assert restored.run_eagerly == straight.run_eagerly
    np.testing.assert_array_equal(
        _numpy([restored.optimizer.multiplier_values])[0],
        _numpy([model.optimizer.multiplier_values])[0],
    )
    restored.fit(
        x, y, batch_size=8, epochs=3, initial_epoch=2, shuffle=False, verbose=0
    )
    # The same compiled step on the same weights, optimizer state and batches:
    # the reloaded model runs the kernels the straight one ran, bit for bit.
    for got, want in zip(_numpy(restored.weights), _numpy(straight.weights)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.smoke
def test_mixed_float16_puts_loss_scaling_around_the_wrapper():
    keras.config.set_dtype_policy("mixed_float16")
    model, backbone = _model()
    optimizer = ktp.optimizers.LearningRateMultipliers(
        keras.optimizers.Adam(0.01), {backbone: 0.1}
    )
    model.compile(optimizer, "mse")
    assert model.optimizer.inner_optimizer is optimizer
    x, y = _data()
    before = _numpy(model.trainable_variables)
    _fit(model, x, y, 2)
    after = _numpy(model.trainable_variables)
    assert all(np.all(np.isfinite(a)) for a in after)
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))


# ---------------------------------------------------------------- keys, config, errors


def test_keys_first_match_wins_and_default():
    model, backbone = _model()
    head = model.get_layer("head")
    multipliers = [
        (head.bias, 3.0),  # a variable
        (backbone.get_layer("bn"), 0.0),  # a layer
        ("b2", 0.2),  # a layer name
        ("*/kernel", 0.5),  # a glob on paths
        (["head/bias"], 9.0),  # exact paths, shadowed by the first key
    ]
    optimizer = ktp.optimizers.LearningRateMultipliers("sgd", multipliers, 0.7)
    optimizer.build(model.trainable_variables)
    got = {v.path: m for v, m in optimizer.get_multipliers()}
    assert got == {
        "backbone/b1/kernel": 0.5,
        "backbone/b1/bias": pytest.approx(0.7),
        "backbone/bn/gamma": 0.0,
        "backbone/bn/beta": 0.0,
        "backbone/b2/kernel": pytest.approx(0.2),
        "backbone/b2/bias": pytest.approx(0.2),
        "head/kernel": 0.5,
        "head/bias": 3.0,
    }


def test_a_string_key_matching_nothing_warns():
    model, _ = _model()
    optimizer = ktp.optimizers.LearningRateMultipliers(
        "sgd", {"bakcbone": 0.1, "stage*": 0.5}
    )
    with pytest.warns(UserWarning, match=r"the key 'bakcbone' matches none of the 8"):
        optimizer.build(model.trainable_variables)
    assert {m for _, m in optimizer.get_multipliers()} == {1.0}


def test_learning_rate_reads_and_writes_go_to_the_inner_optimizer():
    inner = keras.optimizers.Adam(0.01)
    optimizer = ktp.optimizers.LearningRateMultipliers(inner, {})
    optimizer.learning_rate = 0.5
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == 0.5
    assert optimizer.learning_rate is inner.learning_rate


@pytest.mark.smoke
def test_config_roundtrip_and_deserialize():
    from tests.helpers.config import assert_config_roundtrip

    model, backbone = _model()
    optimizer = ktp.optimizers.LearningRateMultipliers(
        keras.optimizers.AdamW(schedule(), weight_decay=0.01),
        [(backbone, 0.1), (model.get_layer("head").bias, 2.0), ("b*", 0.3)],
        default=0.5,
        clipnorm=1.0,
        name="discriminative",
    )
    restored = assert_config_roundtrip(optimizer)
    assert restored.multipliers[0] == ([v.path for v in backbone.weights], 0.1)
    assert restored.multipliers[1:] == [(["head/bias"], 2.0), ("b*", 0.3)]
    assert restored.default == 0.5 and restored.clipnorm == 1.0
    assert isinstance(restored.optimizer, keras.optimizers.AdamW)
    restored.build(model.trainable_variables)
    optimizer.build(model.trainable_variables)
    assert [m for _, m in restored.get_multipliers()] == [
        m for _, m in optimizer.get_multipliers()
    ]
    nested = ktp.optimizers.LookAhead(
        ktp.optimizers.LearningRateMultipliers("adam", {"head": 0.1})
    )
    again = assert_config_roundtrip(nested)
    assert isinstance(again.optimizer, ktp.optimizers.LearningRateMultipliers)
    around = ktp.optimizers.LearningRateMultipliers(
        keras.optimizers.LossScaleOptimizer(ktp.optimizers.RAdam()), {"head": 0.1}
    )
    again = assert_config_roundtrip(around)
    assert isinstance(again.optimizer.inner_optimizer, ktp.optimizers.RAdam)


def test_a_layer_key_without_weights_cannot_be_serialized():
    optimizer = ktp.optimizers.LearningRateMultipliers(
        "sgd", {keras.layers.Dense(2, name="unbuilt"): 0.1}
    )
    with pytest.raises(ValueError, match=r"the layer 'unbuilt' used as a key"):
        optimizer.get_config()


_CLIPPED_SGD = keras.optimizers.SGD(clipnorm=1.0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(multipliers=0.1),
            ValueError,
            r"Argument `multipliers` must be a dict or a list of \(key, multiplier\) "
            r"pairs\. Received: multipliers=0\.1",
        ),
        (dict(multipliers=[("head",)]), ValueError, r"must be a dict or a list"),
        (
            dict(multipliers={3: 0.1}),
            ValueError,
            r"each key must be a layer, a variable, a layer name, a glob pattern on "
            r"variable paths or a list of variable paths\. Received key: 3",
        ),
        (dict(multipliers={"": 0.1}), ValueError, r"Received key: ''"),
        (
            dict(multipliers={"head": -1}),
            ValueError,
            r"Argument `multipliers\['head'\]` must be >= 0\. "
            r"Received: multipliers\['head'\]=-1",
        ),
        (
            dict(multipliers={"head": float("nan")}),
            ValueError,
            r"`multipliers\['head'\]` must be >= 0",
        ),
        (
            dict(default=-0.5),
            ValueError,
            r"Argument `default` must be >= 0\. Received: default=-0\.5",
        ),
        (
            dict(learning_rate=0.1),
            ValueError,
            r"Argument `learning_rate` is not accepted: the learning rate is the "
            r"inner optimizer's; set it there\. Received: learning_rate=0\.1",
        ),
        (
            dict(weight_decay=0.1),
            ValueError,
            r"Argument `weight_decay` is not accepted: set it on the inner optimizer, "
            r"where it is scaled with each variable's rate\. Received: "
            r"weight_decay=0\.1",
        ),
        (
            dict(gradient_accumulation_steps=2),
            ValueError,
            r"does not support `gradient_accumulation_steps`\. "
            r"Received: gradient_accumulation_steps=2",
        ),
        (
            dict(optimizer=_CLIPPED_SGD),
            ValueError,
            r"Argument `optimizer`: its `clipnorm=1\.0` would not apply, since "
            r"LearningRateMultipliers calls SGD's `update_step` with the scaled rates "
            r"itself\. Set it on the wrapper instead: LearningRateMultipliers\("
            r"optimizer, multipliers, clipnorm=\.\.\.\)\.",
        ),
        (
            dict(optimizer=keras.optimizers.Adam(use_ema=True)),
            ValueError,
            r"its `use_ema=True` would not apply",
        ),
        (
            dict(optimizer=ktp.optimizers.LookAhead("sgd"), clipvalue=1.0),
            ValueError,
            r"LearningRateMultipliers around LookAhead \(which does not take its step "
            r"in `update_step`\) does not support `clipvalue`: set it on the inner "
            r"optimizer\. Received: clipvalue=1\.0",
        ),
        (
            dict(optimizer=lambda: None),
            TypeError,
            r"Argument `optimizer` must be a `keras.optimizers.Optimizer` instance, a "
            r"string identifier or an optimizer config\. Received: optimizer=<function",
        ),
    ],
)
def test_bad_arguments(kwargs, error, message):
    kwargs.setdefault("optimizer", keras.optimizers.SGD())
    kwargs.setdefault("multipliers", {})
    with pytest.raises(error, match=message):
        ktp.optimizers.LearningRateMultipliers(**kwargs)


def test_multi_optimizer_inside_is_refused():
    if not hasattr(keras.optimizers, "MultiOptimizer"):
        pytest.skip("keras.optimizers.MultiOptimizer needs Keras 3.15")
    inner = keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(keras.optimizers.SGD())
    )
    with pytest.raises(ValueError, match=r"a MultiOptimizer already gives each group"):
        ktp.optimizers.LearningRateMultipliers(inner, {})


def test_set_multipliers_needs_a_built_optimizer():
    with pytest.raises(ValueError, match=r"`set_multipliers\(\)` needs a built"):
        ktp.optimizers.LearningRateMultipliers("sgd", {}).set_multipliers({})


def test_state_is_one_vector_plus_the_inner_optimizer():
    model, _ = _model()
    optimizer = ktp.optimizers.LearningRateMultipliers("adam", {"head": 0.1})
    optimizer.build(model.trainable_variables)
    inner = optimizer.optimizer.variables
    own = optimizer.variables[: len(optimizer.variables) - len(inner)]
    assert optimizer.variables[len(own) :] == inner
    assert [tuple(v.shape) for v in own] == [(), (), (8,)]  # iterations, lr, m
    assert optimizer.multiplier_values is own[-1]


# ---------------------------------------------------------------- private Keras hooks


@pytest.mark.smoke
def test_compat_steps_through_update_step():
    """Also under PyTorch, where Keras swaps in fused implementations (in its
    backend classes) of SGD, Adam, Nadam, ..."""
    from keras_trainplus import _compat

    stepping = [
        keras.optimizers.SGD(),
        keras.optimizers.Adam(),
        keras.optimizers.AdamW(),
        keras.optimizers.RMSprop(),
        keras.optimizers.Adagrad(),
        keras.optimizers.Lion(),
        ktp.optimizers.RAdam(),
        ktp.optimizers.Nesterov(),
    ]
    for optimizer in stepping:
        assert _compat.steps_through_update_step(optimizer), optimizer
    for optimizer in [
        keras.optimizers.Nadam(),  # also computes in `_backend_update_step`
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
        ktp.optimizers.LookAhead("sgd"),
        ktp.optimizers.Ranger(),
    ]:
        assert not _compat.steps_through_update_step(optimizer), optimizer


def test_compat_variable_index_and_weight_decay_exclusions():
    from keras_trainplus import _compat

    variables = [keras.Variable(np.zeros(2), name=n) for n in ("kernel", "bias")]
    optimizer = keras.optimizers.AdamW(weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    optimizer.build(variables)
    assert [_compat.optimizer_variable_index(optimizer, v) for v in variables] == [
        0,
        1,
    ]
    assert _compat.uses_weight_decay(optimizer, variables[0])
    assert not _compat.uses_weight_decay(optimizer, variables[1])


def test_weight_decay_exclusions_are_honoured_at_the_scaled_rate():
    variables = [keras.Variable(np.ones(2), name=n) for n in ("kernel", "bias")]
    inner = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    inner.exclude_from_weight_decay(var_names=["bias"])
    optimizer = ktp.optimizers.LearningRateMultipliers(inner, [(["kernel"], 0.5)])
    optimizer.apply([keras.ops.zeros(2)] * 2, variables)
    # Zero gradient: Adam's step is 0; the kernel decays at 0.5 * 0.1 * 0.5, one
    # product of the rate and the decay rounding 3 times and the update twice.
    tolerance.assert_close(_numpy(variables), [[0.975] * 2, [1.0] * 2], ulps=5)


# ---------------------------------------------------------------- Keras's own tests


_BASE_ARGUMENTS = (
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
)


def _wrapping(cls):
    """`cls` inside the wrapper with identity multipliers; Keras's base arguments
    go to the wrapper, which applies them around the inner steps."""

    def make(**kwargs):
        base = {k: kwargs.pop(k) for k in list(kwargs) if k in _BASE_ARGUMENTS}
        return ktp.optimizers.LearningRateMultipliers(cls(**kwargs), {}, **base)

    return make


class _WrappedOptimizers:
    """`keras.optimizers` whose SGD and Adam come inside the wrapper."""

    SGD = staticmethod(_wrapping(keras.optimizers.SGD))
    Adam = staticmethod(_wrapping(keras.optimizers.Adam))

    def __getattr__(self, name):
        return getattr(keras.optimizers, name)


def _run_keras_test(case):
    import unittest

    result = unittest.TestResult()
    case.run(result)
    problems = [text for _, text in result.errors + result.failures]
    assert result.wasSuccessful(), "\n".join(problems)


@pytest.mark.parametrize(
    "name",
    [
        "test_iterations_counter",
        "test_empty_gradients",
        "test_ema",
        "test_ema_with_model_fit",
        "test_constraints_are_applied",
        "test_static_loss_scaling",
        "test_set_weights",
        "test_callable_learning_rate",
        "test_overwrite_with_gradient",
        "test_tf_checkpointing",
        "test_mixed_with_tf_variables",
    ],
)
def test_keras_optimizer_contract(name, monkeypatch):
    """Keras's own optimizer tests, run with SGD and Adam inside the wrapper."""
    if name == "test_tf_checkpointing" and BACKEND != "tensorflow":
        pytest.skip("tf.train.Checkpoint needs TensorFlow")
    from keras.src.optimizers import optimizer_test

    monkeypatch.setattr(optimizer_test, "optimizers", _WrappedOptimizers())
    _run_keras_test(optimizer_test.OptimizerTest(name))


@pytest.mark.parametrize(
    "name",
    [
        "test_apply_with_no_vars",
        "test_finite_step",
        "test_infinite_step",
        "test_downscaling",
        "test_upscaling",
        "test_iterations_update",
    ],
)
@pytest.mark.parametrize("variant", ["stateless", "stateful"])
def test_keras_loss_scale_optimizer_contract(name, variant, monkeypatch):
    """Keras's LossScaleOptimizer tests, with the wrapper as its inner optimizer."""
    from keras.src.optimizers import loss_scale_optimizer_test as lso_test

    monkeypatch.setattr(lso_test, "SGD", _wrapping(keras.optimizers.SGD))
    method = name if name == "test_apply_with_no_vars" else f"{name}_{variant}"
    if name == "test_apply_with_no_vars" and variant == "stateless":
        pytest.skip("no stateless variant")
    _run_keras_test(lso_test.LossScaleOptimizerTest(method))
