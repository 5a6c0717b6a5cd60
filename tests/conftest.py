"""Test configuration shared by the whole suite.

The suite runs once per backend (`KERAS_BACKEND=tensorflow`, `jax`, `torch`). Two CPU
devices are made visible to TensorFlow and JAX before either initialises, so that the
distribution tests can run data-parallel on this machine; single-device code is
unaffected.
"""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402

from tests.helpers.backend import BACKEND  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("keras_trainplus")
    group.addoption(
        "--integration-jit-compile",
        choices=("true", "auto"),
        default="true",
        help="`jit_compile` of the compiled tier (tests/test_integration.py).",
    )
    group.addoption(
        "--integration-dtype-policy",
        default="float32",
        help="Keras dtype policy of the compiled tier, e.g. mixed_float16.",
    )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


def pytest_collection_finish(session):
    """Everything imported so far (TensorFlow, JAX, Keras, KerasHub, the test
    modules) lives to the end: moved out of the garbage collector's reach, the
    collections Python runs by itself scan only what the tests create."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    """Under PyTorch only the smoke tests run (the contract of the torch backend)."""
    if BACKEND != "torch":
        return
    skip = pytest.mark.skip(reason="PyTorch backend: smoke tests only")
    for item in items:
        if "smoke" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from the same global state: seeds, float32 policy, no session."""
    keras.utils.set_random_seed(1337)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    # Without `free_memory=False` it runs a full `gc.collect()` after every test,
    # whose cost grows with what the session has kept (compiled functions, caches):
    # up to ~1 s a test, a third of the suite's time. Python's own collections free
    # the tests' garbage as it accumulates.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def backend():
    """The name of the Keras backend under test."""
    return BACKEND


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed, for synthetic data."""
    return np.random.default_rng(0)
