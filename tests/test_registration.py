"""Every public serializable class is registered under the package `keras_trainplus`."""

import importlib
import inspect

import keras
import pytest

MODULES = (
    "keras_trainplus.optimizers",
    "keras_trainplus.schedules",
    "keras_trainplus.layers",
    "keras_trainplus.callbacks",
    "keras_trainplus.ensemble",
)


def _public_configurable_classes():
    classes = []
    for name in MODULES:
        module = importlib.import_module(name)
        for public in module.__all__:
            obj = getattr(module, public)
            if inspect.isclass(obj) and hasattr(obj, "get_config"):
                classes.append(pytest.param(obj, id=f"{name}.{public}"))
    return classes


CLASSES = _public_configurable_classes()


def test_every_module_exports_configurable_classes():
    exported = {param.id.rsplit(".", 1)[0] for param in CLASSES}
    assert exported == set(MODULES)


@pytest.mark.smoke
@pytest.mark.parametrize("cls", CLASSES)
def test_public_class_is_registered_under_the_package(cls):
    name = keras.saving.get_registered_name(cls)
    assert name == f"keras_trainplus>{cls.__name__}"
    assert keras.saving.get_registered_object(name) is cls
