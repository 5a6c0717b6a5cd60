"""Mixup vs keras.layers.MixUp: time per batch of 64 images at 224 x 224.

Both layers get the same `{"images", "labels"}` batches (uint8 images, one-hot
float labels) and run side by side, interleaved, in the same process:

- in a `tf.data` pipeline (`ds.map(layer)`), the place a label-mixing layer lives;
- called directly on backend tensors (eager).

Each backend runs in its own subprocess. Results (median time per batch, the
spread as the 25th-75th percentiles over repeats, and ours / Keras's ratio) are
written into the "### Mixup" part of the layers section of BENCHMARKS.md.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/mixup.py
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _markdown import replace_subsection  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def _machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = (line.split(":", 1)[1] for line in f if "model name" in line)
            model = next(names).strip()
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, load average {load:.1f} at start"


def _stats(values, scale=1.0):
    """25th, 50th and 75th percentiles of `values * scale`."""
    import numpy as np

    return tuple(np.percentile(np.asarray(values) * scale, [25, 50, 75]))


def _report(outputs, machine, batches, repeats):
    lines = [
        "### Mixup",
        "",
        f"`benchmarks/mixup.py`: batch {BATCH} of uint8 {SIZE}x{SIZE}x3 images with "
        f"one-hot labels ({CLASSES} classes), `alpha=0.2`; {repeats} interleaved "
        f"repeats of {batches} batches after a warm-up. Median milliseconds per batch "
        "(25th-75th percentile); ratio = ours / `keras.layers.MixUp` (target <= 1.1). "
        f"Machine: {machine}; the machine is shared with other jobs, so absolute "
        "times are noisy, the ratios less so.",
        "",
        "| backend | setting | keras.layers.MixUp | Mixup | ratio | Mixup + CutMix |",
        "|---|---|---|---|---|---|",
    ]
    for output in outputs:
        for setting, times in output["results"].items():
            keras_stats = _stats(times["keras.layers.MixUp"], 1e3)
            ours = _stats(times["Mixup"], 1e3)
            cutmix = _stats(times["Mixup + CutMix"], 1e3)
            ratio = _stats(
                [o / k for o, k in zip(times["Mixup"], times["keras.layers.MixUp"])]
            )
            cell = "{1:.1f} ({0:.1f}-{2:.1f})".format
            lines.append(
                f"| {output['backend']} | {setting} | {cell(*keras_stats)} | "
                f"{cell(*ours)} | {ratio[1]:.2f} ({ratio[0]:.2f}-{ratio[2]:.2f}) | "
                f"{cell(*cutmix)} |"
            )
    lines += [
        "",
        "Both layers compute one blend `lam x_i + (1 - lam) x_j` per pixel; ours pairs "
        "each sample with its neighbour in the (shuffled) batch and draws one `lam` "
        "per batch, where `keras.layers.MixUp` shuffles the batch and gathers it. "
        "What bounds both is memory traffic: reading and writing 64x224x224x3 "
        "floats (38 MB) per batch, after the uint8 -> float cast.",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _run_backend(args.batches, args.repeats)
        return
    machine = _machine()
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
    text = _report(outputs, machine, args.batches, args.repeats)
    replace_subsection(os.path.join(ROOT, "BENCHMARKS.md"), "layers", "### Mixup", text)
    print(text)


if __name__ == "__main__":
    main()
