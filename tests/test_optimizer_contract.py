"""Keras's optimizer contract, ported from Keras's own tests to our optimizers.

Keras ships `optimizer_test.py`, `loss_scale_optimizer_test.py` and
`optimizer_sparse_test.py` (in `keras/src/optimizers/`), which check Keras's own
optimizers. Each test below ports one of them to every optimizer of `OPTIMIZERS`,
through the public API: where Keras checks a private helper (`_clip_gradients`) or
a hand-computed SGD value, the port checks an equivalence instead (the optimizer
with the feature equals the optimizer given by hand what the feature does). To put
another optimizer under the contract (e.g. a new wrapper), add a factory to
`OPTIMIZERS`.
"""

import pickle
import warnings

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from tests.helpers.backend import BACKEND
from tests.helpers.backend import only_backends

# name -> factory(**base_kwargs); every factory accepts Keras's base arguments.
OPTIMIZERS = {
    "Nesterov": lambda **kw: ktp.optimizers.Nesterov(0.1, **kw),
    "RAdam": lambda **kw: ktp.optimizers.RAdam(0.1, beta_2=0.9, **kw),
    "LookAhead(Adam)": lambda **kw: ktp.optimizers.LookAhead(
        keras.optimizers.Adam(0.1), sync_period=2, **kw
    ),
    "LookAhead(SGD)": lambda **kw: ktp.optimizers.LookAhead(
        keras.optimizers.SGD(0.1, momentum=0.9), sync_period=2, **kw
    ),
    "Ranger": lambda **kw: ktp.optimizers.Ranger(0.1, beta_2=0.9, sync_period=2, **kw),
}
NAMES = sorted(OPTIMIZERS)
SHAPES = [(2, 3), (3,)]


def _grads(step, scale=1.0):
    rng = np.random.default_rng(step)
    return [(rng.normal(size=s) * scale).astype("float32") for s in SHAPES]


def _variables():
    rng = np.random.default_rng(100)
    return [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]


def _numpy(values):
    return [keras.ops.convert_to_numpy(v) for v in values]


def _run(optimizer, grads_per_step, variables=None):
    """Applies each step's gradients eagerly; returns the final variable values."""
    variables = variables or _variables()
    for grads in grads_per_step:
        optimizer.apply(grads, variables)
    return _numpy(variables)


def _assert_same(actual, expected, rtol=1e-5, atol=1e-6):
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_iterations_counter(name):
    optimizer = OPTIMIZERS[name]()
    variables = _variables()
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 0
    for step in (1, 2):
        optimizer.apply_gradients(zip(_grads(step), variables))
        assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == step


@pytest.mark.parametrize("name", NAMES)
def test_empty_gradients(name):
    variables = _variables()
    with pytest.raises(ValueError, match="No gradients provided for any variable."):
        OPTIMIZERS[name]().apply_gradients([(None, variables[0])])
    before = _numpy(variables)
    with pytest.warns(UserWarning, match="Gradients do not exist for variables"):
        OPTIMIZERS[name]().apply([_grads(1)[0], None], variables)
    after = _numpy(variables)
    assert not np.array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def _clip_norm(g, limit):
    return g * min(1.0, limit / np.linalg.norm(g))


CLIPS = {
    "clipnorm": lambda grads: [_clip_norm(g, 1.0) for g in grads],
    "clipvalue": lambda grads: [np.clip(g, -0.5, 0.5) for g in grads],
    "global_clipnorm": lambda grads: [
        g * min(1.0, 1.0 / np.sqrt(sum(np.sum(h * h) for h in grads))) for g in grads
    ],
}
CLIP_VALUES = {"clipnorm": 1.0, "clipvalue": 0.5, "global_clipnorm": 1.0}


@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("name", NAMES)
def test_clipping_equals_clipping_by_hand(name, clip):
    steps = [_grads(t, scale=10.0) for t in range(1, 4)]
    clipped = OPTIMIZERS[name](**{clip: CLIP_VALUES[clip]})
    plain = OPTIMIZERS[name]()
    _assert_same(_run(clipped, steps), _run(plain, [CLIPS[clip](g) for g in steps]))


@pytest.mark.parametrize("name", NAMES)
def test_constraints_are_applied(name):
    variable = keras.Variable(np.full((2, 2), 0.05, "float32"))
    variable.constraint = keras.constraints.NonNeg()
    # Rows of different signs once centralized (Ranger): both rows move.
    grads = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    OPTIMIZERS[name]().apply([grads], [variable])
    assert np.min(keras.ops.convert_to_numpy(variable)) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_static_loss_scaling(name):
    steps = [_grads(t) for t in range(1, 4)]
    scaled = OPTIMIZERS[name](loss_scale_factor=1024.0)
    assert float(keras.ops.convert_to_numpy(scaled.scale_loss(1.0))) == 1024.0
    got = _run(scaled, [[g * 1024.0 for g in grads] for grads in steps])
    _assert_same(got, _run(OPTIMIZERS[name](), steps))


@pytest.mark.parametrize("name", NAMES)
def test_set_weights_restores_the_whole_state(name):
    """`b.set_weights(a.variables)`: same state, so the same next steps."""
    first = OPTIMIZERS[name]()
    variables = _variables()
    _run(first, [_grads(t) for t in range(1, 4)], variables)
    second = OPTIMIZERS[name]()
    with pytest.raises(ValueError, match="You are calling"):
        second.set_weights(first.variables)
    copies = [keras.Variable(v) for v in _numpy(variables)]
    second.build(copies)
    second.set_weights(first.variables)
    _assert_same(_numpy(second.variables), _numpy(first.variables), rtol=0, atol=0)
    later = [_grads(t) for t in range(4, 8)]
    _assert_same(_run(second, later, copies), _run(first, later, variables))


@pytest.mark.parametrize("name", NAMES)
def test_gradient_accumulation_with_weight_decay(name):
    """Three accumulated steps equal one step on their mean gradient."""
    micro = [[_grads(10 * t + k) for k in range(3)] for t in range(4)]
    accumulated = OPTIMIZERS[name](weight_decay=0.05, gradient_accumulation_steps=3)
    whole = OPTIMIZERS[name](weight_decay=0.05)
    got = _run(accumulated, [g for group in micro for g in group])
    mean = [[np.mean(parts, axis=0) for parts in zip(*group)] for group in micro]
    _assert_same(got, _run(whole, mean))


@pytest.mark.parametrize("name", ["Nesterov", "RAdam", "Ranger"])
def test_callable_learning_rate(name):
    steps = [_grads(t) for t in range(1, 4)]
    factory = {
        "Nesterov": ktp.optimizers.Nesterov,
        "RAdam": ktp.optimizers.RAdam,
        "Ranger": ktp.optimizers.Ranger,
    }[name]
    got = _run(factory(learning_rate=lambda: 0.1), steps)
    _assert_same(got, _run(factory(learning_rate=0.1), steps), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_overwrite_with_gradient(name):
    overwritten, stepped = _variables()
    overwritten.overwrite_with_gradient = True
    grads = _grads(1)
    OPTIMIZERS[name]().apply(grads, [overwritten, stepped])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(overwritten), grads[0])


@pytest.mark.parametrize("name", NAMES)
def test_pickleable(name):
    optimizer = OPTIMIZERS[name]()
    reloaded = pickle.loads(pickle.dumps(optimizer))
    assert reloaded.get_config() == optimizer.get_config()


@pytest.mark.parametrize("name", NAMES)
def test_ema_is_the_moving_average_of_the_trajectory(name):
    """`use_ema`: after `finalize_variable_values`, the EMA of the visited weights."""
    optimizer = OPTIMIZERS[name](use_ema=True, ema_momentum=0.9)
    variables = _variables()
    average = None
    for t in range(1, 6):
        optimizer.apply(_grads(t), variables)
        values = [v.astype(np.float64) for v in _numpy(variables)]
        if average is None:  # Keras starts the average after the first step
            average = values
        else:
            average = [0.9 * a + 0.1 * v for a, v in zip(average, values)]
    optimizer.finalize_variable_values(variables)
    _assert_same(_numpy(variables), average)


@only_backends("tensorflow")
@pytest.mark.parametrize("name", NAMES)
def test_tf_checkpointing(name, tmp_path):
    import tensorflow as tf

    x = np.random.default_rng(0).random((4, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    optimizer = OPTIMIZERS[name]()
    model.compile(optimizer, "mse")
    model.train_on_batch(x, x)
    checkpoint = tf.train.Checkpoint(model, optimizer=optimizer)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    model.train_on_batch(x, x)
    after_two = [w.copy() for w in model.get_weights()]
    checkpoint.restore(path)
    model.train_on_batch(x, x)
    _assert_same(model.get_weights(), after_two, rtol=1e-6, atol=1e-7)


@only_backends("tensorflow")
@pytest.mark.parametrize("name", NAMES)
def test_mixed_with_tf_variables(name):
    import tensorflow as tf

    variable = keras.Variable(np.ones((2, 2), "float32"))
    tf_variable = tf.Variable(np.ones((2, 2), "float32"))
    optimizer = OPTIMIZERS[name]()
    grads = np.ones((2, 2), "float32")
    optimizer.apply_gradients([(grads, variable), (grads, tf_variable)])
    assert int(optimizer.iterations.numpy()) == 1
    np.testing.assert_array_equal(tf_variable.numpy(), variable.numpy())
    with pytest.warns(UserWarning, match="Gradients do not exist for variables"):
        optimizer.apply_gradients([(grads, variable), (None, tf_variable)])
    assert int(optimizer.iterations.numpy()) == 2


@only_backends("jax")
@pytest.mark.parametrize("name", NAMES)
def test_stateless_apply_equals_apply(name):
    import jax

    steps = [_grads(t) for t in range(1, 6)]
    stateful = OPTIMIZERS[name]()
    want = _run(stateful, steps)
    optimizer = OPTIMIZERS[name]()
    variables = _variables()
    optimizer.build(variables)
    state = [v.value for v in optimizer.variables]
    params = [v.value for v in variables]
    step = jax.jit(optimizer.stateless_apply)
    for grads in steps:
        params, state = step(state, grads, params)
    _assert_same([np.asarray(p) for p in params], want)


def _stateless_or_stateful(optimizer, grads, variables):
    """One step the way `model.fit` takes it on this backend."""
    if BACKEND != "jax":
        optimizer.apply(grads, variables)
        return
    optimizer.build(variables)
    params, state = optimizer.stateless_apply(
        [v.value for v in optimizer.variables], grads, [v.value for v in variables]
    )
    for variable, value in zip(optimizer.variables, state):
        variable.assign(value)
    for variable, value in zip(variables, params):
        variable.assign(value)


@pytest.mark.parametrize("name", NAMES)
def test_loss_scale_optimizer_finite_step(name):
    """`LossScaleOptimizer(ours)` unscales: same step as ours on the true gradient."""
    grads = _grads(1)
    wrapped = keras.optimizers.LossScaleOptimizer(OPTIMIZERS[name]())
    variables = _variables()
    scale = float(wrapped.initial_scale)
    _stateless_or_stateful(wrapped, [g * scale for g in grads], variables)
    _assert_same(_numpy(variables), _run(OPTIMIZERS[name](), [grads]))


@pytest.mark.parametrize("name", NAMES)
def test_loss_scale_optimizer_infinite_step_is_skipped(name):
    inner = OPTIMIZERS[name]()
    wrapped = keras.optimizers.LossScaleOptimizer(inner)
    variables = _variables()
    before = _numpy(variables)
    grads = _grads(1)
    grads[0][0, 0] = np.inf
    _stateless_or_stateful(wrapped, grads, variables)
    _assert_same(_numpy(variables), before, rtol=0, atol=0)
    assert int(keras.ops.convert_to_numpy(inner.iterations)) == 0


def _sparse(values, indices, shape):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.IndexedSlices(values, indices, shape)
    import jax.experimental.sparse as jax_sparse

    return jax_sparse.BCOO((values, [[i] for i in indices]), shape=shape)


SPARSE = NAMES + ["Ranger(gc_conv_only)"]
# Keras's Adam squares the slices of a sparse gradient before a repeated row's are
# summed (TensorFlow `IndexedSlices`), so its step differs from the dense one there.
ADAM_REPEATED_ROWS = pytest.mark.xfail(
    BACKEND == "tensorflow",
    reason="Keras's Adam: repeated rows of IndexedSlices squared before summing",
    strict=True,
)


@pytest.mark.skipif(BACKEND == "torch", reason="no sparse gradients on PyTorch")
@pytest.mark.parametrize(
    "rows", [[0, 2, 4], [0, 2, 2, 4]], ids=["distinct_rows", "repeated_row"]
)
@pytest.mark.parametrize("name", SPARSE)
def test_sparse_gradients_give_the_dense_result(name, rows, request):
    """Optimizer-sparse-test port: a sparse gradient (rows of a (5, 3, 2) variable,
    as an `Embedding` gets) steps as its dense equivalent (repeated rows summed)."""
    if name == "LookAhead(Adam)" and len(set(rows)) < len(rows):
        request.applymarker(ADAM_REPEATED_ROWS)
    if name == "Ranger(gc_conv_only)":
        make = lambda: ktp.optimizers.Ranger(0.1, gc_conv_only=True)  # noqa: E731
    else:
        make = OPTIMIZERS[name]
    sparse_optimizer, dense_optimizer = make(), make()
    sparse_variable = keras.Variable(np.ones((5, 3, 2), "float32"))
    dense_variable = keras.Variable(np.ones((5, 3, 2), "float32"))
    for i in range(5):
        values = np.full((len(rows), 3, 2), 10.0 - i, "float32")
        values[1] *= -0.5
        dense = np.zeros((5, 3, 2), "float32")
        for row, value in zip(rows, values):
            dense[row] += value
        sparse = _sparse(values, rows, (5, 3, 2))
        _stateless_or_stateful(sparse_optimizer, [sparse], [sparse_variable])
        _stateless_or_stateful(dense_optimizer, [dense], [dense_variable])
    _assert_same(_numpy([sparse_variable]), _numpy([dense_variable]))


def test_no_warning_from_a_plain_step():
    """The ports above expect warnings only where Keras gives them."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for name in NAMES:
            _run(OPTIMIZERS[name](), [_grads(1)])
