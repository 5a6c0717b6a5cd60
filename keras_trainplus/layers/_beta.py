"""Beta sampling that compiles everywhere, XLA on TensorFlow included."""

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
    shape = np_.array([a + 1.0 if a < 1.0 else a for a in concentrations], "float32")
    boost = np_.array([1.0 / a if a < 1.0 else 0.0 for a in concentrations], "float32")
    d = (shape - 1.0 / 3.0)[None, :, None]
    c = 1.0 / np_.sqrt(9.0 * d)
    x = random.normal((2, n, CANDIDATES), dtype="float32", seed=seed)
    u = random.uniform((2, n, CANDIDATES), dtype="float32", seed=seed)
    v = np_.maximum((1.0 + c * x) ** 3, 1e-30)
    log_v = np_.log(v)
    accepted = (1.0 + c * x > 0.0) & (np_.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    first = backend.nn.one_hot(
        np_.argmax(backend.cast(accepted, "int32"), axis=-1), CANDIDATES, dtype="float32"
    )
    log_gamma = np_.log(d[..., 0]) + np_.sum(first * log_v, axis=-1)
    boost_u = random.uniform((2, n), minval=1e-30, dtype="float32", seed=seed)
    log_gamma = log_gamma + boost * np_.log(boost_u)
    return backend.nn.sigmoid(log_gamma[0] - log_gamma[1])
