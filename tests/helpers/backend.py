"""Backend-aware test utilities: which backend runs, and how to compile under it."""

import keras
import pytest

BACKEND = keras.backend.backend()


def only_backends(*names):
    """Marks a test to run only under the given Keras backends."""
    return pytest.mark.skipif(
        BACKEND not in names, reason=f"needs backend in {names}, running {BACKEND}"
    )


def compile_modes():
    """The `model.compile` execution modes each backend is tested in.

    TensorFlow: eager, `tf.function`, and XLA (`jit_compile=True`); JAX: jitted (its
    default, XLA); PyTorch: eager. Each entry is a pair `(id, compile_kwargs)`.
    """
    if BACKEND == "tensorflow":
        return [
            ("eager", {"run_eagerly": True}),
            ("graph", {"jit_compile": False}),
            ("xla", {"jit_compile": True}),
        ]
    if BACKEND == "jax":
        return [("xla", {"jit_compile": True})]
    return [("eager", {"run_eagerly": True})]


def function_modes():
    """Names of the modes in which a pure function of tensors can run on this backend."""
    if BACKEND == "tensorflow":
        return ["eager", "graph", "xla"]
    if BACKEND == "jax":
        return ["eager", "jit"]
    return ["eager"]


def in_mode(fn, mode):
    """Wraps a pure function (tensors in, tensors out) for the given mode."""
    if mode == "eager":
        return fn
    if mode in ("graph", "xla"):
        import tensorflow as tf

        return tf.function(fn, jit_compile=(mode == "xla"), reduce_retracing=True)
    if mode == "jit":
        import jax

        return jax.jit(fn)
    raise ValueError(f"Unknown mode {mode!r}")
