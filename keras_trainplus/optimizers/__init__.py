"""keras_trainplus.optimizers."""

__all__ = []
