"""keras_trainplus.schedules."""

__all__ = []
