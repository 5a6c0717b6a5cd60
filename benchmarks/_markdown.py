"""What the benchmark scripts share: the machine, number formats, BENCHMARKS.md.

Each script writes its own section of BENCHMARKS.md, the text between
`<!-- section: NAME -->` and `<!-- end section: NAME -->`: its setup, the machine,
its tables and the sentences that depend on its numbers. Explanations that hold
whatever the numbers are live outside the markers and are kept as they are.
"""

import importlib.metadata
import os
import platform

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")

# Display names of the distributions `versions` reports.
_NAMES = {
    "keras": "Keras",
    "tensorflow": "TensorFlow",
    "jax": "JAX",
    "torch": "PyTorch",
    "optax": "optax",
    "albumentations": "Albumentations",
    "opencv-python-headless": "OpenCV",
    "opencv-python": "OpenCV",
    "scikit-learn": "scikit-learn",
}


def cpu_model():
    """The processor's model name (Linux `/proc/cpuinfo`), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """`"<CPU model>, <n> CPU cores, <OS> <release>, Python <version>"`."""
    return (
        f"{cpu_model()}, {os.cpu_count()} CPU cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def load_average():
    """The 1, 5 and 15-minute load averages (`"1.2, 1.5, 0.9"`), or `"unknown"`."""
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # not on Windows; unreadable
        return "unknown"


def versions(*distributions):
    """`"Keras 3.15.1, TensorFlow 2.21.0"`: the installed versions of the given
    distributions (pip names), in that order; those not installed are left out."""
    found = []
    for name in distributions:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(f"{_NAMES.get(name, name)} {version}")
    return ", ".join(found)


def median_range(values, spec=".2f", suffix="", percentiles=(0, 100)):
    """`"1.23x (1.01-1.50)"`: the median of `values`, then their range in brackets.

    Args:
        values: the numbers, e.g. one per round.
        spec: the format spec of each number. Defaults to `".2f"`.
        suffix: written after the median. Defaults to `""`.
        percentiles: the range's ends, `(0, 100)` for min-max. Defaults to
            `(0, 100)`.
    """
    low, middle, high = np.percentile(
        np.asarray(values, dtype=float), [percentiles[0], 50, percentiles[1]]
    )
    return f"{middle:{spec}}{suffix} ({low:{spec}}-{high:{spec}})"


def ratio_range(ours, theirs, spec=".2f"):
    """`"1.23x (1.01-1.50)"`: median and range of `ours / theirs`, element-wise
    (e.g. per round)."""
    return median_range(np.asarray(ours) / np.asarray(theirs), spec, "x")


def replace_section(path, section, text):
    """Replaces the text between `<!-- section: NAME -->` and its end marker.

    The section is appended at the end of the file when the file has none; the text
    outside the markers is kept as it is. The file is written atomically.

    Args:
        path: the markdown file, e.g. `BENCHMARKS`.
        section: the name in the markers.
        text: the new text between the markers (a final newline is added if
            missing).
    """
    with open(path) as f:
        content = f.read()
    start = f"<!-- section: {section} -->"
    end = f"<!-- end section: {section} -->"
    if start not in content:
        content = f"{content.rstrip()}\n\n{start}\n{end}\n"
    head, rest = content.split(start, 1)
    if end not in rest:
        raise ValueError(f"{path}: `{start}` has no `{end}` after it")
    _, tail = rest.split(end, 1)
    text = text if text.endswith("\n") else text + "\n"
    write_text(path, f"{head}{start}\n{text}{end}{tail}")


def write_text(path, text):
    """Writes `text` to `path` atomically (`keras_trainplus._files.atomic_path`)."""
    # Imported here: the package imports Keras, which fixes its backend, and some
    # scripts choose the backend after importing this module.
    from keras_trainplus._files import atomic_path

    with atomic_path(path) as temporary:
        with open(temporary, "w") as f:
            f.write(text)
