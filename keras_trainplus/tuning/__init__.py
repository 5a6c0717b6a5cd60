"""keras_trainplus.tuning."""

__all__ = []
