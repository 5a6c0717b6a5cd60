"""Epoch-time overhead of keras_trainplus's EarlyStopping and FreezeUnfreeze.

Fits the same small convnet with each callback and without any, in one run,
interleaving the configurations over several rounds, and compares the median epoch
time of the epochs without a phase change (the first epoch of each fit, which
traces/compiles, is excluded; so is every epoch where FreezeUnfreeze changes phase).
Writes the results into the `callbacks` section of BENCHMARKS.md.

Usage: python benchmarks/callbacks.py [--backends tensorflow jax] [--rounds 5]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- section: callbacks -->", "<!-- end section: callbacks -->"


def _measure(rounds, epochs):
    """Runs in a child process with KERAS_BACKEND set; returns per-config epoch times."""
    import numpy as np

    import keras

    from keras_trainplus.callbacks import EarlyStopping
    from keras_trainplus.callbacks import FreezeUnfreeze

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(512,))
    validation = (x[:128], y[:128])

    def build():
        layers = []
        for i, filters in enumerate((16, 32, 64)):
            layers += [
                keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv"),
                keras.layers.BatchNormalization(name=f"block{i}_bn"),
                keras.layers.ReLU(name=f"block{i}_relu"),
                keras.layers.MaxPooling2D(name=f"block{i}_pool"),
            ]
        backbone = keras.Sequential([keras.Input((32, 32, 3))] + layers, name="backbone")
        inputs = keras.Input((32, 32, 3))
        features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10, name="head")(features))
        model.compile(
            keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    # name -> (callbacks factory, epochs excluded besides the first)
    configs = {
        "none": (lambda: [], ()),
        "EarlyStopping": (lambda: [EarlyStopping(patience=10**6)], ()),
        "FreezeUnfreeze (frozen phase)": (
            lambda: [FreezeUnfreeze("backbone", freeze_epochs=epochs)],
            (),
        ),
        "FreezeUnfreeze (unfrozen, multiplier 1)": (
            lambda: [FreezeUnfreeze("backbone", freeze_epochs=0,
                                    backbone_learning_rate_multiplier=1.0)],
            (),
        ),
        "FreezeUnfreeze (unfrozen, multiplier 0.1)": (
            lambda: [FreezeUnfreeze("backbone", freeze_epochs=0)],
            (),
        ),
        "FreezeUnfreeze (gradual, 3 groups)": (
            lambda: [FreezeUnfreeze("backbone", freeze_epochs=1, unfreeze_every=2)],
            (1, 3),
        ),
    }
    times = {name: [] for name in configs}  # one list of epoch times per round
    for _ in range(rounds):
        for name, (callbacks, excluded) in configs.items():
            keras.utils.set_random_seed(0)
            model = build()
            timer = EpochTimer()
            model.fit(x, y, batch_size=64, epochs=epochs, validation_data=validation,
                      verbose=0, callbacks=callbacks() + [timer])
            times[name].append([
                t for epoch, t in enumerate(timer.times)
                if epoch > 0 and epoch not in excluded
            ])
            keras.backend.clear_session()
    return {"backend": keras.backend.backend(), "times": times}


def _row(name, rounds, baseline_rounds):
    """Median epoch time over all rounds; ratio to the baseline paired per round
    (the median epoch of this configuration over the median epoch of the baseline
    fitted just before it), as the median and range over rounds."""
    import numpy as np

    median = float(np.median(sum(rounds, [])))
    ratios = [
        float(np.median(r)) / float(np.median(b)) for r, b in zip(rounds, baseline_rounds)
    ]
    return (
        f"| {name} | {1000 * median:.1f} | {np.median(ratios):.3f} | "
        f"{min(ratios):.3f}-{max(ratios):.3f} | {len(sum(rounds, []))} |"
    )


def _section(results, rounds, epochs):
    lines = [
        BEGIN,
        "## Callbacks",
        "",
        "`benchmarks/callbacks.py`: a small convnet (3 conv/BN/ReLU/pool blocks as the "
        "backbone, a dense head; 512 32x32 images, batch 64, Adam, validation on 128 "
        "images) fitted with each callback and without any, interleaved over "
        f"{rounds} rounds of {epochs} epochs. Epoch times exclude the first epoch of "
        "each fit (tracing/compilation) and the epochs where FreezeUnfreeze changes "
        "phase (one retrace each). Ratio: per round, the median epoch time with the "
        "callback over the median without it in the same round; the table gives its "
        "median and range over the rounds (target <= 1.02 for the callbacks' own "
        "overhead). The frozen phase "
        "is faster than a full epoch since no backbone gradient is computed; the "
        "unfrozen phase with multiplier 0.1 adds the in-graph step scaling of the "
        "backbone's variables.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; shared with other jobs while measuring, so "
        "single timings are noisy (see the range of the paired ratios).",
        "",
    ]
    for result in results:
        times = result["times"]
        lines += [
            f"Backend: {result['backend']} (default `compile`)",
            "",
            "| callback | median epoch (ms) | ratio (median) | ratio (range) | epochs |",
            "|---|---|---|---|---|",
        ]
        lines += [_row(name, samples, times["none"]) for name, samples in times.items()]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _write_section(text):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        content = f.read()
    start, stop = content.index(BEGIN), content.index(END) + len(END)
    content = content[:start] + text + content[stop:]
    handle, temp = tempfile.mkstemp(dir=ROOT, suffix=".tmp")
    with os.fdopen(handle, "w") as f:
        f.write(content)
    os.replace(temp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.rounds, args.epochs)))
        return
    results = []
    for backend in args.backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        output = subprocess.run(
            [sys.executable, __file__, "--child", "--rounds", str(args.rounds),
             "--epochs", str(args.epochs)],
            env=env, check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    section = _section(results, args.rounds, args.epochs)
    _write_section(section)
    print(section)


if __name__ == "__main__":
    main()
