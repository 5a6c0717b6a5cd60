"""keras_trainplus.tuning: ready-made search spaces and searches on KerasTuner.

Needs the optional extra `tune` (`pip install "keras_trainplus[tune]"`), which
installs KerasTuner; `import keras_trainplus` alone never imports it.

The helpers register hyperparameters in a `keras_tuner.HyperParameters` and build
the corresponding object, so they can be used piecemeal inside any `build(hp)`;
`search` runs `keras_tuner.RandomSearch` or `keras_tuner.GridSearch` on it.
"""

try:
    import keras_tuner  # noqa: F401
except ImportError as error:
    raise ImportError(
        "keras_trainplus.tuning needs KerasTuner, which is not installed. "
        'Install the optional extra: pip install "keras_trainplus[tune]"'
    ) from error

from keras_trainplus.tuning._optimizer import optimizer
from keras_trainplus.tuning._regularization import augmentation_strength
from keras_trainplus.tuning._regularization import dropout_rate
from keras_trainplus.tuning._regularization import mixup_alpha
from keras_trainplus.tuning._result import SearchResult
from keras_trainplus.tuning._schedule import learning_rate_schedule
from keras_trainplus.tuning._search import search

__all__ = [
    "SearchResult",
    "augmentation_strength",
    "dropout_rate",
    "learning_rate_schedule",
    "mixup_alpha",
    "optimizer",
    "search",
]
