"""The PNG plots of `python -m keras_trainplus.demo`."""

import os

import keras
import numpy as np

import keras_trainplus as ktp
from keras_trainplus._files import atomic_path

CHANCE_LABEL = "test accuracy (dashed: chance)"


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


def _integer_ticks(axis):
    """Ticks at whole numbers only (epochs, snapshots, steps)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def schedules_figure(plt, schedule, schedule_steps, snapshot_steps, cycle_steps):
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.2), layout="constrained")
    panels = (
        (schedule, schedule_steps, "WarmUp(CosineDecay): the Ranger run"),
        (
            ktp.schedules.CyclicCosineDecay(0.05, cycle_steps=max(cycle_steps, 1)),
            snapshot_steps,
            "CyclicCosineDecay: the snapshot run",
        ),
        (
            ktp.schedules.OneCycle(0.05, total_steps=schedule_steps),
            schedule_steps,
            "OneCycle (for comparison, not trained)",
        ),
    )
    for axis, (panel_schedule, steps, title) in zip(axes, panels):
        ktp.schedules.plot(panel_schedule, steps, ax=axis)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("")
        axis.set_ylabel("")
        _integer_ticks(axis.xaxis)
    figure.supxlabel("training step", fontsize=10)
    figure.supylabel("learning rate", fontsize=10)
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
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, history[metric], marker=".", label=f"train (Mixup) {metric}")
        axis.plot(epochs, history[f"val_{metric}"], marker=".", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        _integer_ticks(axis.xaxis)
        axis.legend()
    axes[1].set_ylim(0.0, 1.0)
    figure.suptitle("Ranger + WarmUp(CosineDecay), RandomAffine + Mixup")
    return figure


def _label_bars(axis, bars, values):
    """Each bar's value: inside a long bar (clear of the axis end), past a short one."""
    inside = [f"{v:.3f}" if v >= 0.3 else "" for v in values]
    outside = [f"{v:.3f}" if v < 0.3 else "" for v in values]
    axis.bar_label(bars, labels=inside, label_type="center", color="white", fontsize=8)
    axis.bar_label(bars, labels=outside, padding=3, fontsize=8)


def _accuracy_bars(axis, labels, values, chance):
    """Horizontal bars on a [0, 1] axis, each labelled with its value."""
    import textwrap

    positions = np.arange(len(values))[::-1]
    bars = axis.barh(positions, values)
    _label_bars(axis, bars, values)
    axis.set_yticks(positions, [textwrap.fill(x, 26) for x in labels], fontsize=8)
    axis.set_xlim(0.0, 1.0)
    axis.axvline(chance, color="gray", linestyle="--", linewidth=1)
    axis.set_xlabel(CHANCE_LABEL)


def ensemble_figure(plt, rows, member_accuracies, member_task):
    """Snapshots alone, then one panel per task (accuracies on one task only)."""
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    figure, axes = plt.subplots(
        1,
        1 + len(tasks),
        figsize=(4.5 * (1 + len(tasks)), 3.6),
        layout="constrained",
    )
    snapshots = np.arange(1, len(member_accuracies) + 1)
    bars = axes[0].bar(snapshots, member_accuracies)
    _label_bars(axes[0], bars, member_accuracies)
    axes[0].set_xticks(snapshots)
    axes[0].set_xlabel("snapshot")
    axes[0].set_ylabel(CHANCE_LABEL)
    axes[0].set_ylim(0.0, 1.0)
    axes[0].set_title(f"{member_task}: each snapshot alone", fontsize=10)
    chance = next(row["chance"] for row in rows if row["task"] == member_task)
    axes[0].axhline(chance, color="gray", linestyle="--", linewidth=1)
    for axis, task in zip(axes[1:], tasks):
        task_rows = [row for row in rows if row["task"] == task]
        _accuracy_bars(
            axis,
            [row["run"].rpartition(": ")[2] for row in task_rows],
            [row["test_accuracy"] for row in task_rows],
            task_rows[0]["chance"],
        )
        axis.set_title(task, fontsize=10)
    return figure


def write_all(
    directory,
    *,
    schedule,
    schedule_steps,
    snapshot_steps,
    cycle_steps,
    samples,
    augment,
    mixup,
    history,
    rows,
    member_accuracies,
    member_task,
):
    """Writes every figure; returns the paths."""
    plt = _pyplot()
    figures = {
        "learning_rate_schedules.png": schedules_figure(
            plt, schedule, schedule_steps, snapshot_steps, cycle_steps
        ),
        "augmentation_gallery.png": gallery_figure(plt, samples, augment, mixup),
        "learning_curves.png": curves_figure(plt, history),
        "ensemble_comparison.png": ensemble_figure(
            plt, rows, member_accuracies, member_task
        ),
    }
    paths = []
    for name, figure in figures.items():
        paths.append(_save(figure, directory, name))
        plt.close(figure)
    return paths
