"""Epoch-time overhead of keras_trainplus's EarlyStopping and FreezeUnfreeze.

Fits the same small convnet with each callback and, as the baseline, without it but
with the same layers frozen statically, in one run, interleaving the configurations
over several rounds, and compares the CPU and wall time of the epochs after the
first (which traces/compiles and holds FreezeUnfreeze's phase change). Writes the
results into the `callbacks` section of BENCHMARKS.md.

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

    def build(frozen=()):
        """The convnet; `frozen`: "backbone" or "bn" layers set untrainable statically."""
        layers = []
        for i, filters in enumerate((16, 32, 64)):
            layers += [
                keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv"),
                keras.layers.BatchNormalization(name=f"block{i}_bn"),
                keras.layers.ReLU(name=f"block{i}_relu"),
                keras.layers.MaxPooling2D(name=f"block{i}_pool"),
            ]
        backbone = keras.Sequential([keras.Input((32, 32, 3))] + layers, name="backbone")
        if frozen == "backbone":
            backbone.trainable = False
        elif frozen == "bn":
            for layer in layers[1::4]:
                layer.trainable = False
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
            self.start = (time.process_time(), time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            cpu, wall = self.start
            self.times.append((time.process_time() - cpu, time.perf_counter() - wall))

    # name -> (static configuration, callbacks factory, baseline name); a baseline
    # trains exactly what the callback's phase trains, set before compiling.
    configs = {
        "all trainable": ((), lambda: [], None),
        "backbone frozen": ("backbone", lambda: [], None),
        "BN frozen": ("bn", lambda: [], None),
        "EarlyStopping(patience=10**6)": (
            (), lambda: [EarlyStopping(patience=10**6)], "all trainable"),
        "FreezeUnfreeze, frozen phase": (
            (), lambda: [FreezeUnfreeze("backbone", freeze_epochs=10**6)], "backbone frozen"),
        "FreezeUnfreeze, unfrozen, multiplier 1": (
            (), lambda: [FreezeUnfreeze("backbone", freeze_epochs=0,
                                        backbone_learning_rate_multiplier=1.0)], "BN frozen"),
        "FreezeUnfreeze, unfrozen, multiplier 0.1": (
            (), lambda: [FreezeUnfreeze("backbone", freeze_epochs=0)], "BN frozen"),
        "FreezeUnfreeze, unfrozen, train_bn, multiplier 1": (
            (), lambda: [FreezeUnfreeze("backbone", freeze_epochs=0, train_bn=True,
                                        backbone_learning_rate_multiplier=1.0)],
            "all trainable"),
    }
    times = {name: [] for name in configs}  # per round: [(cpu, wall) per epoch]
    for _ in range(rounds):
        for name, (frozen, callbacks, _) in configs.items():
            keras.utils.set_random_seed(0)
            model = build(frozen)
            timer = EpochTimer()
            model.fit(x, y, batch_size=64, epochs=epochs, validation_data=validation,
                      verbose=0, callbacks=callbacks() + [timer])
            times[name].append(timer.times[1:])
            keras.backend.clear_session()
    baselines = {name: config[2] for name, config in configs.items()}
    return {"backend": keras.backend.backend(), "times": times, "baselines": baselines}


def _row(name, rounds, baseline, baseline_rounds):
    """Median CPU and wall time per epoch; ratios to the baseline paired per round
    (median epoch of this configuration over the median epoch of its baseline in
    the same round), as the median (and range) over rounds."""
    import numpy as np

    def median(epochs, column):
        return float(np.median([e[column] for e in epochs]))

    def ratios(column):
        return [median(r, column) / median(b, column) for r, b in zip(rounds, baseline_rounds)]

    cpu = median(sum(rounds, []), 0)
    wall = median(sum(rounds, []), 1)
    if baseline is None:
        return f"| {name} | baseline | {1000 * cpu:.0f} | {1000 * wall:.0f} | | |"
    cpu_ratios, wall_ratios = ratios(0), ratios(1)
    return (
        f"| {name} | {baseline} | {1000 * cpu:.0f} | {1000 * wall:.0f} | "
        f"**{np.median(cpu_ratios):.3f}** ({min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}) | "
        f"{np.median(wall_ratios):.3f} ({min(wall_ratios):.3f}-{max(wall_ratios):.3f}) |"
    )


def _section(results, rounds, epochs, load):
    lines = [
        BEGIN,
        "## Callbacks",
        "",
        "`benchmarks/callbacks.py`: a small convnet (3 conv/BN/ReLU/pool blocks as the "
        "backbone, a dense head; 512 32x32 images, batch 64, Adam, validation on 128 "
        "images) fitted with each callback and, as its baseline, without callback but "
        "with the same layers frozen statically before compiling (FreezeUnfreeze's "
        "frozen phase trains the head only; its unfrozen phase with `train_bn=False` "
        "trains everything but BatchNormalization). Configurations are interleaved "
        f"over {rounds} rounds of {epochs} epochs; the first epoch of each fit "
        "(tracing, compilation, FreezeUnfreeze's one phase change) is excluded, so the "
        "ratios measure the overhead outside phase changes: the callbacks' Python "
        "hooks and, with multiplier 0.1, the in-graph scaling of the backbone's "
        "steps. Ratio: per round, median epoch time with the callback over median "
        "epoch time of the baseline in the same round; median and range over the "
        "rounds. Target <= 1.02.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} (1 min), "
        f"{load[1]:.1f} (5 min) when the run started, on a machine shared with other "
        "jobs: wall-clock times follow that load, so the process CPU time per epoch "
        "(all threads) is the main measure and the wall-clock ratio is shown for "
        "reference.",
        "",
    ]
    for result in results:
        times, baselines = result["times"], result["baselines"]
        lines += [
            f"Backend: {result['backend']} (default `compile`)",
            "",
            "| configuration | baseline | CPU ms/epoch | wall ms/epoch | CPU ratio | "
            "wall ratio |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            _row(name, rounds_, baselines[name], times.get(baselines[name]))
            for name, rounds_ in times.items()
        ]
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.rounds, args.epochs)))
        return
    load = os.getloadavg()
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
    section = _section(results, args.rounds, args.epochs, load)
    _write_section(section)
    print(section)


if __name__ == "__main__":
    main()
