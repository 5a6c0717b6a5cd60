"""The PNG plots of `python -m keras_trainplus.demo`."""

import os

import keras
import numpy as np

import keras_trainplus as ktp
from keras_trainplus._files import atomic_path


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "The demo's plots need matplotlib: pip install 'keras_trainplus[demo]'"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, directory, name):
    """Writes the figure atomically and returns its path."""
    path = os.path.join(directory, name)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=90, bbox_inches="tight")
    return path


def schedules_figure(plt, schedule, schedule_steps, cycle_steps):
    figure, axes = plt.subplots(1, 3, figsize=(13, 3))
    ktp.schedules.plot(schedule, schedule_steps, ax=axes[0])
    axes[0].set_title("WarmUp(CosineDecay): the Ranger run")
    ktp.schedules.plot(
        ktp.schedules.CyclicCosineDecay(0.05, cycle_steps=max(cycle_steps, 1)),
        schedule_steps,
        ax=axes[1],
    )
    axes[1].set_title("CyclicCosineDecay: snapshot cycles")
    ktp.schedules.plot(
        ktp.schedules.OneCycle(0.05, total_steps=schedule_steps),
        schedule_steps,
        ax=axes[2],
    )
    axes[2].set_title("OneCycle")
    return figure


def gallery_figure(plt, samples, augment, mixup, count=8):
    images, labels = samples[0][:count], samples[1][:count]
    augmented = keras.ops.convert_to_numpy(augment(images))
    mixed, mixed_labels = (keras.ops.convert_to_numpy(t) for t in mixup(images, labels))
    rows = [
        ("original", images, [str(y) for y in labels]),
        ("RandomAffine", augmented, [str(y) for y in labels]),
        (
            "Mixup",
            mixed,
            ["/".join(str(k) for k in np.argsort(-row)[:2]) for row in mixed_labels],
        ),
    ]
    figure, axes = plt.subplots(
        len(rows), count, figsize=(count * 1.2, len(rows) * 1.4)
    )
    for r, (title, batch, captions) in enumerate(rows):
        for c in range(count):
            axis = axes[r, c]
            axis.imshow(batch[c, ..., 0], cmap="gray_r", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_xlabel(captions[c], fontsize=8)
        axes[r, 0].set_ylabel(title, fontsize=9)
    return figure


def curves_figure(plt, history):
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(history[metric], label=f"train (Mixup) {metric}")
        axis.plot(history[f"val_{metric}"], label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.legend()
    figure.suptitle("Ranger + WarmUp(CosineDecay), RandomAffine + Mixup")
    return figure


def ensemble_figure(plt, rows, member_accuracies):
    figure, axes = plt.subplots(
        1, 2, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1], "wspace": 1.1}
    )
    axes[0].bar(range(1, len(member_accuracies) + 1), member_accuracies)
    axes[0].set_xlabel("snapshot")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0.0, 1.0)
    axes[0].set_title("each snapshot alone")
    names = [row["run"] for row in rows]
    values = [row["test_accuracy"] for row in rows]
    axes[1].barh(range(len(rows)), values)
    axes[1].set_yticks(range(len(rows)), names, fontsize=7)
    axes[1].set_xlim(min(values) - 0.05, 1.0)
    axes[1].set_xlabel("test accuracy")
    axes[1].set_title("all runs")
    return figure


def write_all(
    directory,
    *,
    schedule,
    schedule_steps,
    cycle_steps,
    samples,
    augment,
    mixup,
    history,
    rows,
    member_accuracies,
):
    """Writes every figure; returns the paths."""
    plt = _pyplot()
    figures = {
        "learning_rate_schedules.png": schedules_figure(
            plt, schedule, schedule_steps, cycle_steps
        ),
        "augmentation_gallery.png": gallery_figure(plt, samples, augment, mixup),
        "learning_curves.png": curves_figure(plt, history),
        "ensemble_comparison.png": ensemble_figure(plt, rows, member_accuracies),
    }
    paths = []
    for name, figure in figures.items():
        paths.append(_save(figure, directory, name))
        plt.close(figure)
    return paths
