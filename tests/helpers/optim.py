"""Float64 NumPy reference harness for optimizers.

Two problems with gradients written once against an array namespace `xp` (NumPy or
`keras.ops`), so the Keras optimizer and the float64 reference see the same function
without relying on any backend's autodiff:

- `Quadratic`: an ill-conditioned quadratic (condition number 1e3 by default) over a
  vector and a matrix;
- `TinyMLP`: a one-hidden-layer tanh network with fixed data and mean squared error,
  parameters of rank 1 and 2.

`keras_trajectory` runs a Keras optimizer on a problem for some steps in a given mode
(`eager`; TensorFlow `graph`/`xla` through `tf.function`; JAX `jit` through
`optimizer.stateless_apply`, the path `model.fit` takes) and records the parameters
after every step. The test writes the reference update rule itself and runs it with
`reference_trajectory`, which also measures how far float32 rounding carries the
rule on the problem; `assert_trajectories_close` compares a Keras trajectory with
the reference within a fixed multiple of that (see its docstring for why the bound
is sound), and `assert_trajectories_equal` compares two Keras trajectories that
run the same operations bit for bit.
"""

import keras
import numpy as np

from tests.helpers import tolerance
from tests.helpers.backend import BACKEND


class Quadratic:
    """`f(x, M) = 1/2 x^T D x - b^T x + 1/2 tr(M^T R M)`.

    `D` is diagonal with eigenvalues spread over `condition` (1e3 by default): the
    ill-conditioned valley of the lecture, whose float32 gradients are exact to
    rounding, so that float32 and float64 trajectories may agree to float32
    precision. `R` is a rotated (non-diagonal) Hessian with condition 10, which
    couples the coordinates of the matrix parameter.
    """

    def __init__(self, n=6, condition=1e3, seed=0):
        rng = np.random.default_rng(seed)
        self.diagonal = np.logspace(0.0, np.log10(condition), n) / np.sqrt(condition)
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        self.rotated = (q * np.logspace(-0.5, 0.5, n)) @ q.T
        self.b = rng.normal(size=(n,))
        self.initial = [rng.normal(size=(n,)), rng.normal(size=(n, 2))]

    def grads(self, params, xp):
        dtype = _dtype(params)
        d = xp.convert_to_tensor(self.diagonal.astype(dtype))
        r = xp.convert_to_tensor(self.rotated.astype(dtype))
        b = xp.convert_to_tensor(self.b.astype(dtype))
        x, m = params
        return [d * x - b, xp.matmul(r, m)]


class TinyMLP:
    """A 4-8-1 tanh network on 32 fixed samples, loss `1/2 mean((y_hat - y)^2)`."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(32, 4))
        self.y = np.sin(self.x @ rng.normal(size=(4, 1)))
        self.initial = [
            rng.normal(size=(4, 8)) * 0.5,
            np.zeros((8,)),
            rng.normal(size=(8, 1)) * 0.5,
            np.zeros((1,)),
        ]

    def grads(self, params, xp):
        dtype = _dtype(params)
        x = xp.convert_to_tensor(self.x.astype(dtype))
        y = xp.convert_to_tensor(self.y.astype(dtype))
        w1, b1, w2, b2 = params
        hidden = xp.tanh(xp.matmul(x, w1) + b1)
        error = (xp.matmul(hidden, w2) + b2 - y) / self.x.shape[0]
        d_hidden = xp.matmul(error, xp.transpose(w2)) * (1.0 - hidden * hidden)
        return [
            xp.matmul(xp.transpose(x), d_hidden),
            xp.sum(d_hidden, axis=0),
            xp.matmul(xp.transpose(hidden), error),
            xp.sum(error, axis=0),
        ]


class _NumpyOps:
    """The subset of `keras.ops` the problems use, in NumPy."""

    convert_to_tensor = staticmethod(np.asarray)
    matmul = staticmethod(np.matmul)
    tanh = staticmethod(np.tanh)
    transpose = staticmethod(np.transpose)
    sum = staticmethod(np.sum)


NUMPY_OPS = _NumpyOps()


def _dtype(params):
    dtype = getattr(params[0], "dtype", None)
    return "float64" if dtype == np.float64 else "float32"


def keras_trajectory(optimizer, problem, steps, mode="eager", before_step=None):
    """Runs `optimizer` on `problem` and returns the parameters after each step.

    Args:
        before_step: optional `before_step(t, optimizer)`, called before step `t`
            (from 1) with the optimizer's variables up to date, e.g. to assign one
            of them; the compiled step is not retraced for it.

    Returns:
        A list of `steps` lists of float64 NumPy arrays.
    """
    variables = [
        keras.Variable(p.astype("float32"), name=f"p{i}")
        for i, p in enumerate(problem.initial)
    ]
    optimizer.build(variables)
    trajectory = []
    if mode == "jit":
        assert BACKEND == "jax", mode
        import jax

        @jax.jit
        def step(params, optimizer_state):
            grads = problem.grads(params, keras.ops)
            return optimizer.stateless_apply(optimizer_state, grads, params)

        params = [v.value for v in variables]
        state = [v.value for v in optimizer.variables]
        for t in range(1, steps + 1):
            if before_step is not None:
                for variable, value in zip(optimizer.variables, state):
                    variable.assign(value)
                before_step(t, optimizer)
                state = [v.value for v in optimizer.variables]
            params, state = step(params, state)
            trajectory.append([np.asarray(p, dtype=np.float64) for p in params])
        for variable, value in zip(optimizer.variables, state):
            variable.assign(value)
        for variable, value in zip(variables, params):
            variable.assign(value)
        return trajectory

    def step():
        grads = problem.grads([v.value for v in variables], keras.ops)
        optimizer.apply(grads, variables)

    if mode in ("graph", "xla"):
        import tensorflow as tf

        step = tf.function(step, jit_compile=(mode == "xla"))
    for t in range(1, steps + 1):
        if before_step is not None:
            before_step(t, optimizer)
        step()
        trajectory.append(
            [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]
        )
    if mode in ("graph", "xla"):
        assert step.experimental_get_tracing_count() == 1, "retraced during the run"
    return trajectory


def reference_trajectory(update, problem, steps, state=None):
    """Runs a NumPy update rule on `problem` in float64, and again in float32.

    The float64 run is the reference. The float32 run measures how far float32
    rounding carries a trajectory from it on this problem: it starts from the
    float32-rounded initial point the optimizer starts from, computes in float32
    (gradients, and the rule's arithmetic: NumPy keeps float32 arrays and scalars
    float32 when the other operand is a Python number), and rounds the parameters
    and every array of the state to float32 after each step. The step `t` is handed
    to the rule as a NumPy scalar of the run's dtype, as Keras's optimizers compute
    with a float32 step, so that the rule's scalar arithmetic on it (bias
    corrections `1 - beta**t`, momentum ramps) rounds in float32 as theirs does;
    that arithmetic cancels (`1 - 0.999**2` loses 9 of float32's 24 bits), and
    leaving it in float64 would understate the noise by an order of magnitude.
    `Reference.noise[t][i]` is the largest distance between the two runs over
    parameter `i` and steps `1..t`, at least one float32 spacing (`EPS32`) of that
    parameter's scale.

    Args:
        update: `update(step, params, grads, state) -> (params, state)`, where `step`
            counts from 1 (a NumPy float64 or float32 scalar: use `int(step)` to
            index) and `params`/`grads` are lists of float64 or float32 arrays.
        problem: `Quadratic` or `TinyMLP`.
        steps: number of steps.
        state: the initial state handed to `update` at step 1.

    Returns:
        A `Reference`: the list of `steps` lists of float64 arrays, with `noise`.
    """
    exact = _run_rule(update, problem, steps, state, np.float64)
    rng = np.random.default_rng(0)
    runs = [_run_rule(update, problem, steps, state, np.float32)]
    for _ in range(NUDGED_RUNS):
        runs.append(_run_rule(update, problem, steps, state, np.float32, rng))
    noise, worst = [], [0.0] * len(problem.initial)
    for t, want in enumerate(exact):
        worst = [
            max(
                worst[i],
                tolerance.float32_bound(STEP_ULPS, e),
                *(float(np.max(np.abs(run[t][i] - e))) for run in runs),
            )
            for i, e in enumerate(want)
        ]
        noise.append(list(worst))
    return Reference(exact, noise)


class Reference(list):
    """A float64 trajectory (a list of steps) with its float32 `noise` per step."""

    def __init__(self, trajectory, noise):
        super().__init__(trajectory)
        self.noise = noise


# Float32 runs started a step's rounding away from the initial point (NUDGE units
# of EPS32 at each tensor's scale, in random directions), besides the one started on
# it: where the dynamics amplify errors, the noise is dominated by the first steps'
# few roundings, and a single run may happen to round those in directions the
# problem damps.
NUDGED_RUNS = 2
NUDGE = 2
# The least noise: one step's roundings (gradient, products, sums, the update: ~8
# of half a unit each) at a parameter's scale.
STEP_ULPS = 4


def _run_rule(update, problem, steps, state, dtype, rng=None):
    params = [np.asarray(p, np.float64).astype(dtype) for p in problem.initial]
    if rng is not None:
        params = [
            (
                p + rng.choice([-1, 1], p.shape) * tolerance.float32_bound(NUDGE, p)
            ).astype(dtype)
            for p in params
        ]
    state = _cast(state, dtype)
    trajectory = []
    for t in range(1, steps + 1):
        grads = problem.grads(params, NUMPY_OPS)
        params, state = update(dtype(t), params, grads, state)
        params = [np.asarray(p, dtype) for p in params]
        state = _cast(state, dtype)
        trajectory.append([p.astype(np.float64) for p in params])
    return trajectory


def _cast(tree, dtype):
    """Rounds every floating array in nested lists/tuples/dicts to `dtype`."""
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cast(leaf, dtype) for leaf in tree)
    if isinstance(tree, dict):
        return {key: _cast(leaf, dtype) for key, leaf in tree.items()}
    if isinstance(tree, np.ndarray) and np.issubdtype(tree.dtype, np.floating):
        return tree.astype(dtype)
    return tree


# How many times the float32 NumPy rule's distance from the float64 reference a
# Keras float32 trajectory may be. See `assert_trajectories_close`.
TRAJECTORY_FACTOR = 16


def assert_trajectories_close(actual, expected, factor=TRAJECTORY_FACTOR):
    """Compares a float32 trajectory with a float64 `Reference`, step by step.

    At step `t`, parameter `i` must satisfy
    `max |actual - expected| <= factor * expected.noise[t][i]`: the Keras float32
    run may be `factor` times as far from the float64 reference as the same rule
    run in float32 NumPy. Both are float32 evaluations of one rule from the same
    float32 initial point: each step rounds a few times relative to the scale of
    the parameters and state, and the problem's dynamics carry those errors the same
    way for both (including their growth on a non-convex problem). They differ only
    in how many roundings a step makes and in which direction each one goes
    (reduction order, fused multiply-add, vector width, threads: what changes from
    one CPU to another); the noise is a running maximum over steps and over the
    whole tensor, so that a step where the NumPy run's error happens to cross zero
    does not tighten the bound, and a parameter that crosses zero is judged on its
    tensor's scale. The factor covers the difference in roundings per step between
    Keras's kernels and the NumPy rule (written for clarity, not to mirror Keras's
    operations) and the spread of a single run: measured ratios stay below a third
    of it on every CPU variant `.ci/portability` runs, while a wrong bias
    correction, an off-by-one step or a wrong momentum misses by a hundred times
    the bound or more (`tests/test_harness.py`).

    Raises an `AssertionError` naming the first step and parameter that differ.
    """
    if not isinstance(expected, Reference):
        raise TypeError(
            "`expected` must be a `Reference` from `reference_trajectory`; compare "
            "two Keras trajectories with `assert_trajectories_equal`, or each with "
            "a float64 reference."
        )
    assert len(actual) == len(expected)
    worst, failure = 0.0, None
    for t, (got, want, noise) in enumerate(zip(actual, expected, expected.noise), 1):
        for i, (g, w, n) in enumerate(zip(got, want, noise)):
            ratio = float(np.max(np.abs(np.asarray(g, np.float64) - w))) / (factor * n)
            worst = max(worst, ratio)
            if failure is None and not ratio <= 1:
                failure = (g, w, factor * n, f"step {t}, parameter {i}")
    if failure is None:
        tolerance.record(worst)
    else:
        tolerance.assert_within(*failure)


def assert_trajectories_equal(actual, expected):
    """Asserts two trajectories are bit for bit equal, naming the first step that is not."""
    assert len(actual) == len(expected)
    for t, (got, want) in enumerate(zip(actual, expected), start=1):
        for i, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(g, w, err_msg=f"step {t}, parameter {i}")
