"""keras_trainplus.ensemble."""

__all__ = []
