"""`python -m keras_trainplus.demo --quick` runs end to end, quietly, and writes
honest figures and a table the README shows with the same columns."""

import argparse
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import keras_trainplus as ktp
from keras_trainplus import _demo_plots
from keras_trainplus import _demo_runs
from tests.helpers.backend import BACKEND

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
# What the demo must not print: TensorFlow's frequent-retracing warning, Keras's
# warnings about input running out and about `shuffle` ignored on a dataset.
NOISE = ("retracing", "ran out of data", "`shuffle=True` was passed")


@pytest.mark.skipif(BACKEND == "torch", reason="the torch smoke run covers components")
def test_quick_demo_writes_table_plots_and_results(tmp_path):
    output = tmp_path / "demo"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_trainplus.demo",
            "--quick",
            "--verbose",
            "0",
            "--output-dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "KERAS_BACKEND": BACKEND},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "test accuracy" in completed.stdout
    for noise in NOISE:
        assert noise not in completed.stderr + completed.stdout, noise
    assert f"backend {BACKEND}" in completed.stdout

    results = json.loads((output / "results.json").read_text())
    assert results["backend"] == BACKEND and results["quick"] is True
    runs = [row["run"] for row in results["rows"]]
    assert len(runs) == 5, runs
    for row in results["rows"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["run"] in completed.stdout
    # The quick budget lets the pretrained backbone's BatchNormalization statistics
    # settle: fine-tuning must not sit at chance (1 in 5).
    fine_tuned = results["rows"][-1]
    assert "FreezeUnfreeze" in fine_tuned["run"]
    assert fine_tuned["test_accuracy"] > 2 * fine_tuned["chance"], fine_tuned

    import matplotlib.image

    names = sorted(os.path.basename(p) for p in results["images"])
    assert names == [
        "augmentation_gallery.png",
        "ensemble_comparison.png",
        "learning_curves.png",
        "learning_rate_schedules.png",
    ]
    for path in results["images"]:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, path
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
        assert np.ptp(pixels) > 0, f"{path} is blank"
    assert not [p for p in os.listdir(output) if p.endswith(".tmp")]


def _pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows():
    """Made-up results of the two tasks, in the demo's shape."""

    def row(run, task, chance, accuracy):
        return {"run": run, "task": task, "chance": chance, "test_accuracy": accuracy}

    return [
        row(
            "Ranger + WarmUp(CosineDecay) + RandomAffine + Mixup",
            "digits 0-9",
            0.1,
            0.91,
        ),
        row("single model (last snapshot)", "digits 0-9", 0.1, 0.93),
        row("snapshot ensemble (M=2)", "digits 0-9", 0.1, 0.94),
        row(
            "digits 5-9, 100 examples: from scratch",
            "digits 5-9, 100 examples",
            0.2,
            0.6,
        ),
        row(
            "digits 5-9, 100 examples: FreezeUnfreeze fine-tuning",
            "digits 5-9, 100 examples",
            0.2,
            0.7,
        ),
    ]


def _texts(axis):
    return [text.get_text() for text in axis.texts]


def test_ensemble_figure_has_one_task_per_panel_from_zero_with_value_labels():
    plt = _pyplot()
    rows = _rows()
    figure = _demo_plots.ensemble_figure(plt, rows, [0.88, 0.93], "digits 0-9")
    figure.canvas.draw()
    snapshots, digits, transfer = figure.axes
    assert snapshots.get_ylim() == (0.0, 1.0)
    assert {"0.880", "0.930"} <= set(_texts(snapshots))
    for axis, task in ((digits, "digits 0-9"), (transfer, "digits 5-9, 100 examples")):
        assert axis.get_xlim() == (0.0, 1.0)
        assert axis.get_title() == task
        task_rows = [row for row in rows if row["task"] == task]
        names = [
            label.get_text().replace("\n", " ") for label in axis.get_yticklabels()
        ]
        assert len(names) == len(task_rows)
        for row in task_rows:
            assert any(row["run"].endswith(name) for name in names), (row, names)
            assert f"{row['test_accuracy']:.3f}" in _texts(axis)
        assert "chance" in axis.get_xlabel()
    plt.close(figure)


def _visible_ticks(axis, limits):
    low, high = sorted(limits)
    ticks = np.asarray(axis.get_ticklocs())
    return ticks[(ticks >= low - 1e-9) & (ticks <= high + 1e-9)]


def test_quick_figures_have_integer_ticks():
    """Two epochs, two snapshots, a few steps: no tick at 0.5 of an epoch."""
    plt = _pyplot()
    history = {
        "loss": [2.3, 2.1],
        "val_loss": [2.2, 2.0],
        "accuracy": [0.2, 0.4],
        "val_accuracy": [0.3, 0.5],
    }
    curves = _demo_plots.curves_figure(plt, history)
    ensemble = _demo_plots.ensemble_figure(plt, _rows(), [0.88, 0.93], "digits 0-9")
    schedules = _demo_plots.schedules_figure(
        plt,
        ktp.schedules.CosineDecay(0.1, decay_steps=5),
        schedule_steps=6,
        snapshot_steps=4,
        cycle_steps=2,
    )
    axes = [*curves.axes, ensemble.axes[0], *schedules.axes]
    for figure in (curves, ensemble, schedules):
        figure.canvas.draw()
    for axis in axes:
        ticks = _visible_ticks(axis.xaxis, axis.get_xlim())
        assert ticks.size >= 2, axis.get_title()
        np.testing.assert_array_equal(ticks, np.round(ticks), err_msg=axis.get_title())
    for figure in (curves, ensemble, schedules):
        plt.close(figure)


def test_schedule_panels_and_their_labels_do_not_overlap():
    plt = _pyplot()
    schedule = ktp.schedules.WarmUp(
        ktp.schedules.CosineDecay(3e-3, decay_steps=40), warmup_steps=10
    )
    figure = _demo_plots.schedules_figure(
        plt, schedule, schedule_steps=51, snapshot_steps=34, cycle_steps=17
    )
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = [axis.get_tightbbox(renderer) for axis in figure.axes]
    for left, right in zip(boxes, boxes[1:]):
        assert left.x1 < right.x0, (left, right)
    plt.close(figure)


def test_accuracy_of_many_models_leaves_no_retracing_warning(caplog):
    """`accuracy` runs on each of the demo's models (7 in a run): no new traced
    function per model, so TensorFlow has nothing to warn about."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(300, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 5, size=300)
    with caplog.at_level(logging.WARNING):
        for index in range(7):
            model = _demo_runs.make_model(5, f"model_{index}")
            accuracy = _demo_runs.accuracy(model, x, y)
            assert 0.0 <= accuracy <= 1.0
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.skipif(BACKEND == "torch", reason="the torch smoke run covers components")
def test_transfer_run_leaves_no_input_warning():
    """FreezeUnfreeze rebuilds the train function at its phase change: the data of
    `fit` must not run out there (Keras warns "Your input ran out of data")."""
    budget = dict(
        _demo_runs.budgets(True), pretrain_epochs=1, finetune_epochs=3, patience=3
    )
    args = argparse.Namespace(seed=0, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = _demo_runs.run_transfer(_demo_runs.load_digits(0), args, budget)
    assert [row["epochs"] for row in rows] == [3, 3]
    messages = [str(w.message) for w in caught]
    for noise in NOISE:
        assert not [m for m in messages if noise in m], noise


def test_readme_demo_table_has_the_columns_the_demo_prints():
    text = README.read_text()
    section = text[text.index("## What the demo shows") :]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    readme_header = re.split(r"\s{2,}", block.splitlines()[0].strip())
    rows = [
        {
            "run": "r",
            "test_accuracy": 0.5,
            "epochs": 1,
            "seconds": 1.0,
            "note": "n",
        }
    ]
    printed = _demo_runs.format_table(rows).splitlines()
    assert readme_header == re.split(r"\s{2,}", printed[0].strip())
    # The README shows the table as printed: header, rule, one line per run.
    assert set(block.splitlines()[1]) <= {"-", " "}
    assert len(block.splitlines()) == 2 + 5
