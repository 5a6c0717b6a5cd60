"""The runnable examples in the schedules' docstrings give the values they show."""

import doctest

import pytest

from keras_trainplus.schedules import cosine_decay
from keras_trainplus.schedules import cyclic_cosine_decay
from keras_trainplus.schedules import inverse_sqrt_decay
from keras_trainplus.schedules import linear_decay
from keras_trainplus.schedules import one_cycle
from keras_trainplus.schedules import step_decay
from keras_trainplus.schedules import warm_up

MODULES = [
    step_decay,
    cosine_decay,
    linear_decay,
    inverse_sqrt_decay,
    warm_up,
    cyclic_cosine_decay,
    one_cycle,
]


@pytest.mark.smoke
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_docstring_examples(module):
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
