"""The `from_config` the callbacks share: `keras.callbacks.Callback` has none."""


class ConfigMixin:
    """Rebuilds a callback from `get_config()`, the keyword arguments of `__init__`."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)
