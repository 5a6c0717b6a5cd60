"""Serialization round trips, written here since `keras.src.testing` is not public."""

import json

import keras


def assert_config_roundtrip(obj, ignore=()):
    """Checks that `obj` survives `get_config`/`from_config` and Keras (de)serialization.

    The config must be JSON-serializable; rebuilding from it must give an object of the
    same class whose config is equal; and the registered name must resolve through
    `keras.saving.deserialize_keras_object` without `custom_objects`.

    Args:
        obj: a layer, optimizer, schedule, callback or other Keras object.
        ignore: config keys that are not expected to survive (none by default).

    Returns:
        The object rebuilt through `keras.saving.deserialize_keras_object`.
    """
    config = obj.get_config()
    json.dumps(config)
    rebuilt = type(obj).from_config(config)
    assert type(rebuilt) is type(obj)
    _assert_configs_equal(rebuilt.get_config(), config, ignore)

    serialized = keras.saving.serialize_keras_object(obj)
    json.dumps(serialized)
    registered = serialized.get("registered_name") or ""
    assert registered.startswith("keras_trainplus>"), serialized
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(obj)
    _assert_configs_equal(restored.get_config(), config, ignore)
    return restored


def _assert_configs_equal(actual, expected, ignore):
    actual = {k: v for k, v in actual.items() if k not in ignore}
    expected = {k: v for k, v in expected.items() if k not in ignore}
    assert json.dumps(actual, sort_keys=True, default=str) == json.dumps(
        expected, sort_keys=True, default=str
    ), f"config changed in the round trip:\n{actual}\n!=\n{expected}"
