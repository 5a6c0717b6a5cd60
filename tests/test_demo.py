"""`python -m keras_trainplus.demo --quick` runs end to end and writes what it says."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.backend import BACKEND

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert f"backend {BACKEND}" in completed.stdout

    results = json.loads((output / "results.json").read_text())
    assert results["backend"] == BACKEND and results["quick"] is True
    runs = [row["run"] for row in results["rows"]]
    assert len(runs) == 5, runs
    for row in results["rows"]:
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["run"] in completed.stdout

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
