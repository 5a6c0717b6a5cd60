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
`reference_trajectory`; `assert_trajectories_close` compares the two.
"""

import keras
import numpy as np

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
    """Runs a float64 NumPy update rule on `problem`.

    Args:
        update: `update(step, params, grads, state) -> (params, state)`, where `step`
            counts from 1 and `params`/`grads` are lists of float64 arrays.
        problem: `Quadratic` or `TinyMLP`.
        steps: number of steps.
        state: the initial state handed to `update` at step 1.

    Returns:
        A list of `steps` lists of float64 arrays.
    """
    params = [np.array(p, dtype=np.float64) for p in problem.initial]
    trajectory = []
    for t in range(1, steps + 1):
        grads = problem.grads(params, NUMPY_OPS)
        params, state = update(t, params, grads, state)
        trajectory.append([np.array(p) for p in params])
    return trajectory


def assert_trajectories_close(actual, expected, rtol=1e-4, atol=1e-6):
    """Compares two trajectories step by step, reporting the first step that differs."""
    assert len(actual) == len(expected)
    for t, (got, want) in enumerate(zip(actual, expected), start=1):
        for i, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(
                g, w, rtol=rtol, atol=atol, err_msg=f"step {t}, parameter {i}"
            )
