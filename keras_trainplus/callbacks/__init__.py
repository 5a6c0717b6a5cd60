"""keras_trainplus.callbacks."""

__all__ = []
