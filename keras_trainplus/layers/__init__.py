"""keras_trainplus.layers."""

__all__ = []
