"""Mixup vs keras.layers.MixUp: time per batch of 64 images at 224 x 224.

Both layers get the same `{"images", "labels"}` batches (uint8 images, one-hot
float labels) and run side by side, interleaved, in the same process:

- in a `tf.data` pipeline (`ds.map(layer)`), the place a label-mixing layer lives;
- called directly on backend tensors (eager).

Each backend runs in its own subprocess. Results (median time per batch, the
spread as the 25th-75th percentiles over repeats, and ours / Keras's ratio) are
written into the mixup section of BENCHMARKS.md.

    python benchmarks/mixup.py [--backends tensorflow,jax] [--no-write]
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _markdown import BENCHMARKS  # noqa: E402
from _markdown import ROOT  # noqa: E402
from _markdown import load_average  # noqa: E402
from _markdown import machine  # noqa: E402
from _markdown import median_range  # noqa: E402
from _markdown import replace_section  # noqa: E402
from _markdown import versions  # noqa: E402

BATCH, SIZE, CLASSES = 64, 224, 1000


def _measure(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _run_backend(batches, repeats):
    """Runs in a subprocess with KERAS_BACKEND set; prints a JSON dict of timings."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_trainplus.layers import Mixup

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH, SIZE, SIZE, 3), dtype="uint8")
    labels = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, BATCH)]
    batch = {"images": images, "labels": labels}
    layers = {
        "keras.layers.MixUp": keras.layers.MixUp(alpha=0.2, seed=0),
        "Mixup": Mixup(alpha=0.2, seed=0),
        "Mixup + CutMix": Mixup(alpha=0.2, cutmix_alpha=1.0, seed=0),
    }

    def pipeline(layer):
        ds = tf.data.Dataset.from_tensors(batch).repeat(batches).map(layer)

        def consume():
            for _ in ds:
                pass

        return consume

    tensors = {k: keras.ops.convert_to_tensor(v) for k, v in batch.items()}

    def eager(layer):
        def consume():
            for _ in range(batches):
                out = layer(tensors)
            keras.ops.convert_to_numpy(out["images"][0, 0, 0])

        return consume

    results = {}
    for setting, make in (("tf.data", pipeline), ("eager call", eager)):
        runs = {name: make(layer) for name, layer in layers.items()}
        for run in runs.values():  # warm-up: tracing and first-call costs
            run()
        times = {name: [] for name in runs}
        for _ in range(repeats):  # interleaved, so load changes hit all alike
            for name, run in runs.items():
                times[name] += [t / batches for t in _measure(run, 1)]
        results[setting] = times
    print(json.dumps({"backend": keras.backend.backend(), "results": results}))


def _report(outputs, load, batches, repeats):
    lines = [
        "### Mixup",
        "",
        f"`benchmarks/mixup.py`: batch {BATCH} of uint8 {SIZE}x{SIZE}x3 images with "
        f"one-hot labels ({CLASSES} classes), `alpha=0.2`; {repeats} interleaved "
        f"repeats of {batches} batches after a warm-up. Median milliseconds per batch "
        "(25th-75th percentile); ratio = ours / `keras.layers.MixUp` (target <= 1.1). "
        f"Machine: {machine()}; {versions('keras', 'tensorflow', 'jax')}; load "
        f"average {load} at the start (1, 5, 15 min); the machine is shared with "
        "other jobs, so absolute times are noisy, the ratios less so.",
        "",
        "| backend | setting | keras.layers.MixUp | Mixup | ratio | Mixup + CutMix |",
        "|---|---|---|---|---|---|",
    ]

    def cell(values, scale=1e3, spec=".1f"):
        return median_range([v * scale for v in values], spec, percentiles=(25, 75))

    for output in outputs:
        for setting, times in output["results"].items():
            ours, keras_times = times["Mixup"], times["keras.layers.MixUp"]
            ratios = [o / k for o, k in zip(ours, keras_times)]
            lines.append(
                f"| {output['backend']} | {setting} | {cell(keras_times)} | "
                f"{cell(ours)} | {cell(ratios, 1, '.2f')} | "
                f"{cell(times['Mixup + CutMix'])} |"
            )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        _run_backend(args.batches, args.repeats)
        return
    load = load_average()
    outputs = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        command = [
            sys.executable,
            __file__,
            "--child",
            f"--batches={args.batches}",
            f"--repeats={args.repeats}",
        ]
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, check=True
        )
        outputs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    text = _report(outputs, load, args.batches, args.repeats)
    print(text)
    if not args.no_write:
        replace_section(BENCHMARKS, "mixup", text)


if __name__ == "__main__":
    main()
