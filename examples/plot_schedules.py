"""Draws every learning-rate schedule of keras_trainplus into one picture.

Usage: `python examples/plot_schedules.py [--output docs/images/schedules.png]`
(needs matplotlib: `pip install "keras_trainplus[plot]"`).
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_trainplus import schedules  # noqa: E402
from keras_trainplus._files import atomic_path  # noqa: E402

STEPS = 1000

PANELS = [
    (
        "StepDecay(0.1, [30, 60, 90], steps_per_epoch=10)",
        schedules.StepDecay(0.1, [30, 60, 90], steps_per_epoch=10),
    ),
    (
        "CosineDecay(0.1, 1000, final_learning_rate=0.01)",
        schedules.CosineDecay(0.1, 1000, final_learning_rate=0.01),
    ),
    ("LinearDecay(0.1, 800)", schedules.LinearDecay(0.1, 800)),
    (
        "InverseSqrtDecay(0.1, timescale=50)",
        schedules.InverseSqrtDecay(0.1, timescale=50),
    ),
    (
        'WarmUp(CosineDecay(0.1, 900), 100) / shape="cosine"',
        [
            schedules.WarmUp(schedules.CosineDecay(0.1, 900), 100),
            schedules.WarmUp(schedules.CosineDecay(0.1, 900), 100, shape="cosine"),
        ],
    ),
    (
        "CyclicCosineDecay(0.1, 200) / cycle_mult=2, cycle_decay=0.7",
        [
            schedules.CyclicCosineDecay(0.1, 200),
            schedules.CyclicCosineDecay(
                0.1, 100, 0.005, cycle_mult=2.0, cycle_decay=0.7
            ),
        ],
    ),
    (
        'OneCycle(0.1, 1000) / anneal="linear"',
        [schedules.OneCycle(0.1, 1000), schedules.OneCycle(0.1, 1000, anneal="linear")],
    ),
]


def draw(path):
    """Renders the panels and writes the PNG atomically to `path`."""
    figure, axes = plt.subplots(4, 2, figsize=(10, 10), dpi=72)
    for ax, (title, panel) in zip(axes.flat, PANELS):
        for schedule in panel if isinstance(panel, list) else [panel]:
            schedules.plot(schedule, STEPS, ax=ax)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
    axes.flat[-1].set_axis_off()
    figure.tight_layout()
    with atomic_path(path) as temporary:  # umask permissions, durable, atomic
        figure.savefig(temporary, format="png")
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", default=os.path.join("docs", "images", "schedules.png")
    )
    draw(parser.parse_args().output)


if __name__ == "__main__":
    main()
