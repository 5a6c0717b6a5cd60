"""benchmarks/_markdown.py: machine description, number formats, BENCHMARKS.md
sections; and the reports of the benchmark scripts written through it."""

import importlib
import importlib.metadata
import os
import platform
import re
import shutil

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def report(monkeypatch):
    """The `_markdown` module, with `benchmarks/` on the path (as the scripts have)."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    return importlib.import_module("_markdown")


DOCUMENT = """# Title

Static introduction.

<!-- section: first -->
## First

old numbers
<!-- end section: first -->

Static prose about the first section, kept by every run.

<!-- section: second -->
second body
<!-- end section: second -->
tail
"""


def test_replace_section_keeps_text_outside_markers(report, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOCUMENT)
    report.replace_section(str(path), "first", "## First\n\nnew numbers")
    expected = DOCUMENT.replace("old numbers", "new numbers")
    assert path.read_text() == expected
    # Idempotent, and nothing left behind next to the file.
    report.replace_section(str(path), "first", "## First\n\nnew numbers\n")
    assert path.read_text() == expected
    assert os.listdir(tmp_path) == ["BENCHMARKS.md"]


def test_replace_section_appends_a_missing_section(report, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(DOCUMENT)
    report.replace_section(str(path), "third", "body")
    assert path.read_text() == (
        DOCUMENT.rstrip() + "\n\n<!-- section: third -->\nbody\n"
        "<!-- end section: third -->\n"
    )


def test_replace_section_without_end_marker_raises_and_keeps_file(report, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    broken = DOCUMENT.replace("<!-- end section: second -->", "")
    path.write_text(broken)
    with pytest.raises(ValueError, match="has no `<!-- end section: second -->`"):
        report.replace_section(str(path), "second", "body")
    assert path.read_text() == broken


def test_machine_description_fields(report):
    description = report.machine()
    assert description.startswith(report.cpu_model() + ", ")
    assert f", {os.cpu_count()} CPU cores, " in description
    assert f"{platform.system()} {platform.release()}" in description
    assert description.endswith(f"Python {platform.python_version()}")
    assert report.cpu_model().strip()
    if hasattr(os, "getloadavg"):
        assert re.fullmatch(r"\d+\.\d, \d+\.\d, \d+\.\d", report.load_average())


def test_versions_names_installed_distributions_only(report):
    import keras

    assert report.versions("keras", "no-such-distribution-for-this-test") == (
        f"Keras {keras.__version__}"
    )
    numpy_version = importlib.metadata.version("numpy")
    assert report.versions("numpy", "keras") == (
        f"numpy {numpy_version}, Keras {keras.__version__}"
    )


def test_median_range_formats(report):
    assert report.median_range([3, 1, 2, 10], ".2f", "x") == "2.50x (1.00-10.00)"
    # Linear percentiles of 1..5: 25th = 2, 75th = 4.
    assert report.median_range([5, 1, 4, 2, 3], ".1f", percentiles=(25, 75)) == (
        "3.0 (2.0-4.0)"
    )
    assert report.ratio_range([2.0, 6.0, 3.0], [1.0, 2.0, 3.0]) == ("2.00x (1.00-3.00)")


def test_benchmarks_md_has_every_scripts_section_once():
    with open(os.path.join(ROOT, "BENCHMARKS.md")) as f:
        content = f.read()
    names = re.findall(r"<!-- section: ([\w-]+) -->", content)
    assert len(names) == len(set(names))
    for name in names:
        start = content.index(f"<!-- section: {name} -->")
        assert content.count(f"<!-- end section: {name} -->") == 1
        assert content.index(f"<!-- end section: {name} -->") > start
    written = set()
    for folder in ("benchmarks", "examples"):
        for entry in os.listdir(os.path.join(ROOT, folder)):
            if entry.endswith(".py"):
                with open(os.path.join(ROOT, folder, entry)) as f:
                    source = f.read()
                written |= set(re.findall(r'replace_section\(\w+, "([\w-]+)"', source))
    written.add("tuning")  # examples/random_vs_grid.py: MARKER
    assert written >= {"optimizers", "mixup", "geometric-layers", "jpeg-crops"}
    assert written <= set(names)


def _augment_results(crop_scale):
    rounds = 3
    rng = np.random.default_rng(0)

    def values(level):
        return list(level * (1 + 0.1 * rng.random(rounds)))

    from augment import CROP_SETTING
    from augment import FLOOR
    from augment import KERAS_FLIP
    from augment import OURS_CROP

    return {
        "RandomAffine, tf.data": {
            "RandomAffine": values(600),
            "Keras chain": values(150),
        },
        CROP_SETTING: {
            OURS_CROP: values(2000 * crop_scale),
            "Albumentations": values(5000),
            KERAS_FLIP: values(1100),
            FLOOR: values(6500),
        },
    }


@pytest.mark.parametrize("crop_scale, met", [(1.0, False), (6.0, True)])
def test_augment_report_section_keeps_static_prose(
    report, monkeypatch, tmp_path, crop_scale, met
):
    # Importing the script sets KERAS_BACKEND; monkeypatch restores it afterwards.
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", ""))
    augment = importlib.import_module("augment")
    kernels = {
        "tf.image.resize (float32 crop)": 110.0,
        "cv2.resize (uint8 crop)": 120.0,
        "Albumentations transform (uint8 crop)": 170.0,
    }
    results = _augment_results(crop_scale)
    text = augment.report(results, kernels, 3, "1.0, 1.0, 1.0", "2.0, 2.0, 2.0")
    lines = text.splitlines()
    assert lines[0] == "### Geometric layers"
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 1 + 1 + 3  # header, one affine pair, three crop pairs
    assert ("the 2x target is met" in text) == met
    assert ("the 2x target is not met" in text) == (not met)
    assert "(the resize kernel is not what holds ours back)" in text
    assert "load average 1.0, 1.0, 1.0 at the start, 2.0, 2.0, 2.0 at the end" in text
    path = tmp_path / "BENCHMARKS.md"
    shutil.copy(os.path.join(ROOT, "BENCHMARKS.md"), path)
    before = path.read_text()
    report.replace_section(str(path), "geometric-layers", text)
    after = path.read_text()
    end = "<!-- end section: geometric-layers -->"
    start = "<!-- section: geometric-layers -->"
    assert after.split(start)[0] == before.split(start)[0]
    assert after.split(end)[1] == before.split(end)[1]
    assert after.split(end)[1].lstrip().startswith("RandomAffine vs the Keras chain:")
    assert f"{start}\n{text}{end}" in after


def test_mixup_report_rows(report):
    mixup = importlib.import_module("mixup")
    times = {
        "keras.layers.MixUp": [0.010, 0.020, 0.030, 0.040, 0.050],
        "Mixup": [0.010, 0.010, 0.030, 0.020, 0.050],
        "Mixup + CutMix": [0.02] * 5,
    }
    outputs = [{"backend": "jax", "results": {"tf.data": times}}]
    text = mixup._report(outputs, "1.0, 1.0, 1.0", 5, 5)
    assert text.splitlines()[0] == "### Mixup"
    # Ratios 1, 0.5, 1, 0.5, 1: median 1, 25th percentile 0.5, 75th 1.
    assert (
        "| jax | tf.data | 30.0 (20.0-40.0) | 20.0 (10.0-30.0) | 1.00 (0.50-1.00) | "
        "20.0 (20.0-20.0) |"
    ) in text
