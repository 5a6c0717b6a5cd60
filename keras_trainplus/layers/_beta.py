"""Beta sampling that compiles everywhere, XLA on TensorFlow included."""

import numpy as np

CANDIDATES = 16


def symmetric_beta(backend, seed, concentrations):
    """One draw of `Beta(a, a)` for each `a` in `concentrations`, shape `(n,)`.

    `lam = X / (X + Y)` with `X, Y ~ Gamma(a)`, computed as
    `sigmoid(log X - log Y)` so that a small `a` cannot give 0 / 0. Gammas come from
    Marsaglia & Tsang's method ("A simple method for generating gamma variables",
    ACM TOMS 26(3), 2000), with shape `a + 1` and `Gamma(a) = Gamma(a + 1) U^(1/a)`
    when `a < 1`. Its acceptance rate is over 95%, so of 16 candidates drawn at once
    the first accepted one is taken (all 16 rejected has probability below 1e-20).
    `keras.random.beta` relies on `tf.random.stateless_gamma` under TensorFlow,
    which XLA cannot compile; this uses normals and uniforms only.

    Args:
        backend: the layer's `self.backend` (op modules of the backend in use).
        seed: the layer's `keras.random.SeedGenerator` for that backend.
        concentrations: Python floats `a > 0`.

    Returns:
        A float32 tensor of shape `(len(concentrations),)`.
    """
    np_, random, n = backend.numpy, backend.random, len(concentrations)
    # Constants of the method, from the configuration alone (host-side NumPy).
    shape = np.array([a + 1.0 if a < 1.0 else a for a in concentrations], "float32")
    boost = np.array([1.0 / a if a < 1.0 else 0.0 for a in concentrations], "float32")
    d = shape - np.float32(1.0 / 3.0)
    d3 = d[None, :, None]
    constants = (d3, 1.0 / np.sqrt(9.0 * d3), np.log(d), boost)
    d, c, log_d, boost = (backend.convert_to_tensor(value) for value in constants)
    x = random.normal((2, n, CANDIDATES), dtype="float32", seed=seed)
    u = random.uniform((2, n, CANDIDATES), dtype="float32", seed=seed)
    cx = 1.0 + c * x
    v = np_.maximum(cx * cx * cx, 1e-30)
    log_v = np_.log(v)
    accepted = (cx > 0.0) & (np_.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    first_accepted = np_.argmax(backend.cast(accepted, "int32"), axis=-1)
    first = backend.nn.one_hot(first_accepted, CANDIDATES, dtype="float32")
    log_gamma = log_d + np_.sum(first * log_v, axis=-1)
    boost_u = random.uniform((2, n), minval=1e-30, dtype="float32", seed=seed)
    log_gamma = log_gamma + boost * np_.log(boost_u)
    return backend.nn.sigmoid(log_gamma[0] - log_gamma[1])
