import sys

import numpy as np
import pytest

from keras_trainplus.schedules import CosineDecay
from keras_trainplus.schedules import StepDecay
from keras_trainplus.schedules import plot
from tests.helpers import schedules as helpers


@pytest.fixture
def axes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    yield ax
    plt.close(figure)


@pytest.mark.smoke
def test_plots_the_rate_at_every_step(axes):
    assert plot(CosineDecay(0.1, 50), 60, ax=axes) is axes
    line = axes.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(60))
    want = helpers.table(helpers.cosine_decay, range(60), initial=0.1, decay_steps=50)
    helpers.assert_matches(line.get_ydata(), want)
    assert line.get_label() == "CosineDecay"
    assert axes.get_xlabel() == "step" and axes.get_ylabel() == "learning rate"


def test_plots_given_steps_into_the_current_axes(axes):
    steps = [0, 99, 100, 250]
    ax = plot(StepDecay(1.0, [100, 200]), steps)
    assert ax is axes
    helpers.assert_matches(ax.get_lines()[0].get_ydata(), [1.0, 1.0, 0.1, 0.01])


@pytest.mark.parametrize("steps", [0, 2.5, [[1, 2]], []])
def test_rejects_bad_steps(axes, steps):
    with pytest.raises(
        ValueError, match=r"Argument `steps` must be an integer >= 1 or a 1-D sequence"
    ):
        plot(CosineDecay(0.1, 10), steps, ax=axes)


def test_names_the_plot_extra_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "keras_trainplus\[plot\]"'):
        plot(CosineDecay(0.1, 10), 10)
