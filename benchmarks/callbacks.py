"""Epoch-time overhead of keras_trainplus's EarlyStopping and FreezeUnfreeze.

Fits the same small convnet with each callback and, as the baseline, without it but
with the same layers frozen statically, in one run, interleaving the configurations
over several rounds, and compares the CPU and wall time of the epochs after the
first (which traces/compiles and holds FreezeUnfreeze's phase change). Writes the
results into the `callbacks` section of BENCHMARKS.md.

Usage: python benchmarks/callbacks.py [--backends tensorflow jax] [--rounds 6]
       [--epochs 4] [--samples 2048] [--no-write]
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

HOOKS = (
    "on_train_begin",
    "on_epoch_begin",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_epoch_end",
    "on_train_end",
)


def _time_hooks(callback, totals, clock):
    """Wraps the hooks `callback`'s class overrides, adding their wall time to
    `totals[hook]` in the epochs after the first (`clock.epoch > 0`); hooks it does
    not override are left as they are, so that Keras still skips them."""
    import keras

    for hook in HOOKS:
        if getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook):
            continue
        method = getattr(callback, hook)

        def timed(*args, _method=method, _hook=hook, **kwargs):
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                if clock.epoch > 0:
                    elapsed = time.perf_counter() - start
                    totals[_hook] = totals.get(_hook, 0.0) + elapsed

        setattr(callback, hook, timed)
    return callback


def _measure(rounds, epochs, samples):
    """Runs in a child process with KERAS_BACKEND set; returns epoch times per run."""
    import keras
    import numpy as np

    from keras_trainplus.callbacks import EarlyStopping
    from keras_trainplus.callbacks import FreezeUnfreeze
    from keras_trainplus.optimizers import LearningRateMultipliers

    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(samples,))
    validation = (x[:128], y[:128])

    def build(frozen=(), multiplier=None):
        """The convnet; `frozen`: "backbone" or "bn" layers made untrainable;
        `multiplier`: the backbone's learning-rate multiplier (FreezeUnfreeze needs
        the optimizer to apply it, and under JAX the wrapper in any case)."""
        layers = []
        for i, filters in enumerate((16, 32, 64)):
            layers += [
                keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv"),
                keras.layers.BatchNormalization(name=f"block{i}_bn"),
                keras.layers.ReLU(name=f"block{i}_relu"),
                keras.layers.MaxPooling2D(name=f"block{i}_pool"),
            ]
        backbone = keras.Sequential(
            [keras.Input((32, 32, 3))] + layers, name="backbone"
        )
        if frozen == "backbone":
            backbone.trainable = False
        elif frozen == "bn":
            for layer in layers[1::4]:
                layer.trainable = False
        inputs = keras.Input((32, 32, 3))
        features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10, name="head")(features))
        optimizer = keras.optimizers.Adam(1e-3)
        if multiplier is not None:
            optimizer = LearningRateMultipliers(optimizer, {backbone: multiplier})
        model.compile(
            optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        return model

    class EpochStart(keras.callbacks.Callback):
        """First in the callback list: an epoch (a step) starts before any callback's
        `on_epoch_begin` (`on_train_batch_begin`)."""

        def __init__(self):
            super().__init__()
            self.start = self.step_start = None
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.start = (time.process_time(), time.perf_counter())

        def on_train_batch_begin(self, batch, logs=None):
            self.step_start = (time.process_time(), time.perf_counter())

    class EpochEnd(keras.callbacks.Callback):
        """Last in the list: an epoch (a step) ends after every callback's
        `on_epoch_end` (`on_train_batch_end`). A step ends when its loss is on the
        host, so that asynchronous dispatch (JAX) does not hide its time."""

        def __init__(self, start):
            super().__init__()
            self.begin, self.times, self.steps = start, [], []

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])
            cpu, wall = self.begin.step_start
            if self.begin.epoch > 0:
                self.steps.append(
                    (time.process_time() - cpu, time.perf_counter() - wall)
                )

        def on_epoch_end(self, epoch, logs=None):
            cpu, wall = self.begin.start
            self.times.append((time.process_time() - cpu, time.perf_counter() - wall))

    # name -> (static configuration, callbacks factory, baseline name); a baseline
    # trains exactly what the callback's phase trains, set before compiling.
    configs = {
        "all trainable": ((), lambda: [], None),
        "backbone frozen": ("backbone", lambda: [], None),
        "BN frozen": ("bn", lambda: [], None),
        "EarlyStopping(patience=10**6)": (
            (),
            lambda: [EarlyStopping(patience=10**6)],
            "all trainable",
        ),
        "FreezeUnfreeze, frozen phase": (
            (),
            lambda: [FreezeUnfreeze("backbone", freeze_epochs=10**6)],
            "backbone frozen",
        ),
        "FreezeUnfreeze, unfrozen, multiplier 1": (
            (),
            lambda: [
                FreezeUnfreeze(
                    "backbone", freeze_epochs=0, backbone_learning_rate_multiplier=1.0
                )
            ],
            "BN frozen",
        ),
        "FreezeUnfreeze, unfrozen, multiplier 0.1": (
            (),
            lambda: [FreezeUnfreeze("backbone", freeze_epochs=0)],
            "BN frozen",
        ),
        "FreezeUnfreeze, unfrozen, train_bn, multiplier 1": (
            (),
            lambda: [
                FreezeUnfreeze(
                    "backbone",
                    freeze_epochs=0,
                    train_bn=True,
                    backbone_learning_rate_multiplier=1.0,
                )
            ],
            "all trainable",
        ),
    }
    times = {name: [] for name in configs}  # per round: [(cpu, wall) per epoch]
    steps = {
        name: [] for name in configs
    }  # [(cpu, wall) per step], epochs after the first
    hook_seconds = {name: {} for name in configs}  # hook -> wall seconds, all rounds
    for _ in range(rounds):
        for name, (frozen, callbacks, _) in configs.items():
            keras.utils.set_random_seed(0)
            made = callbacks()
            multiplier = next(
                (
                    c.backbone_learning_rate_multiplier
                    for c in made
                    if isinstance(c, FreezeUnfreeze)
                ),
                None,
            )
            model = build(frozen, multiplier)
            start = EpochStart()
            end = EpochEnd(start)
            timed = [_time_hooks(c, hook_seconds[name], start) for c in made]
            model.fit(
                x,
                y,
                batch_size=64,
                epochs=epochs,
                validation_data=validation,
                verbose=0,
                callbacks=[start] + timed + [end],
            )
            times[name].append(end.times[1:])
            steps[name] += end.steps
            keras.backend.clear_session()
    # Per epoch after the first: the hooks called every epoch (not once per fit).
    per_fit = ("on_train_begin", "on_train_end")
    hooks_ms = {
        name: 1000
        * sum(t for h, t in totals.items() if h not in per_fit)
        / (rounds * (epochs - 1))
        for name, totals in hook_seconds.items()
    }
    baselines = {name: config[2] for name, config in configs.items()}
    return {
        "backend": keras.backend.backend(),
        "times": times,
        "baselines": baselines,
        "hooks_ms": hooks_ms,
        "steps": steps,
    }


def _median(epochs, column):
    """Median of one column (0: CPU, 1: wall seconds) over `epochs`."""
    import numpy as np

    return float(np.median([e[column] for e in epochs]))


def _hooks_percent(result, name):
    """The callback's hook time as a percentage of its median wall epoch."""
    wall = _median(sum(result["times"][name], []), 1)
    return 100 * result["hooks_ms"][name] / (1000 * wall)


def _best_ratios(result, name):
    """CPU time of the fastest epoch and of the fastest step of `name` over those of
    its baseline (each over all rounds)."""
    times, steps = result["times"], result["steps"]
    baseline = result["baselines"][name]

    def best(rounds):
        return min(e[0] for e in sum(rounds, []))

    return (
        best(times[name]) / best(times[baseline]),
        min(c for c, _ in steps[name]) / min(c for c, _ in steps[baseline]),
    )


def _row(result, name):
    """One table row: median CPU and wall time per epoch, the callback's own hook
    time per epoch, and ratios to the baseline of CPU time per epoch: paired per
    round (median epoch of this configuration over the median epoch of its
    baseline in the same round; median and range over the rounds) and of the best
    epochs and steps (`_best_ratios`)."""
    import numpy as np

    rounds, baseline = result["times"][name], result["baselines"][name]
    cpu = _median(sum(rounds, []), 0)
    wall = _median(sum(rounds, []), 1)
    if baseline is None:
        return f"| {name} | baseline | {1000 * cpu:.0f} | {1000 * wall:.0f} | | | | | |"
    baseline_rounds = result["times"][baseline]

    def ratios(column):
        return [
            _median(r, column) / _median(b, column)
            for r, b in zip(rounds, baseline_rounds)
        ]

    cpu_ratios, wall_ratios = ratios(0), ratios(1)
    best_ratio, step_ratio = _best_ratios(result, name)
    hooks_ms = result["hooks_ms"][name]
    return (
        f"| {name} | {baseline} | {1000 * cpu:.0f} | {1000 * wall:.0f} | "
        f"{hooks_ms:.2f} ({_hooks_percent(result, name):.2f} %) | "
        f"**{np.median(cpu_ratios):.3f}** "
        f"({min(cpu_ratios):.3f}-{max(cpu_ratios):.3f}) | "
        f"{best_ratio:.3f} | {step_ratio:.3f} | "
        f"{median_range(wall_ratios, '.3f')} |"
    )


def _section(results, rounds, epochs, samples, load):
    lines = [
        "## Callbacks",
        "",
        "`benchmarks/callbacks.py`: a small convnet (3 conv/BN/ReLU/pool blocks as the "
        f"backbone, a dense head; {samples} 32x32 images, batch 64, Adam, validation "
        "on 128 images) fitted with each callback and, as its baseline, without "
        "callback but with the same layers frozen statically before compiling "
        "(FreezeUnfreeze's frozen phase trains the head only; its unfrozen phase with "
        "`train_bn=False` trains everything but BatchNormalization). Configurations "
        f"are interleaved over {rounds} rounds of {epochs} epochs; the first epoch of "
        "each fit (tracing, compilation, FreezeUnfreeze's one phase change) is "
        "excluded, so the ratios measure the overhead outside phase changes: the "
        "callbacks' Python hooks and, with multiplier 0.1, the in-graph scaling of "
        "the backbone's steps. An epoch is timed from before the first callback's "
        "`on_epoch_begin` to after the last callback's `on_epoch_end`. 'Hooks' is "
        "the wall time spent in the callback's own per-epoch and per-batch hooks, "
        "measured directly, per epoch after the first. Ratios of CPU time per "
        "epoch to the baseline: "
        "paired per round (median epoch over the baseline's median epoch in the same "
        "round; median and range over the rounds), and of the best epochs (the "
        "fastest epoch of all rounds on each side) and of the best training steps "
        "(the fastest step, from the first callback's `on_train_batch_begin` to the "
        "loss on the host after the last callback's `on_train_batch_end`, of all "
        "epochs after the first: the in-graph cost alone, plus per-batch hooks). A "
        "busy machine only ever adds time, so the best-of ratios are the least noisy "
        "estimates. Target <= 1.02.",
        "",
        f"Machine: {machine()}; {versions('keras', 'tensorflow', 'jax')}; load "
        f"average {load} (1, 5, 15 min) when the run started, on a machine shared "
        "with other jobs: wall-clock times follow that load, so the process CPU time "
        "per epoch (all threads) is the main measure and the wall-clock ratio is "
        "shown for reference.",
        "",
    ]
    for result in results:
        lines += [
            f"Backend: {result['backend']} (default `compile`)",
            "",
            "| configuration | baseline | CPU ms/epoch | wall ms/epoch | "
            "hooks ms/epoch (% of epoch) | CPU ratio, paired | "
            "CPU ratio, best epochs | CPU ratio, best steps | "
            "wall ratio, paired |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [_row(result, name) for name in result["times"]]
        lines.append("")
    lines += _conclusion(results)
    return "\n".join(lines)


def _conclusion(results):
    """What the measurements show, from the numbers of this run."""
    hooks, spread = [], []
    for result in results:
        for name, baseline in result["baselines"].items():
            if baseline is not None:
                hooks.append((_hooks_percent(result, name), name, result["backend"]))
                spread += _best_ratios(result, name)
    worst = max(hooks)
    return [
        f"The callbacks' own hooks cost at most {worst[0]:.2f} % of an epoch here "
        f"({worst[1]}, {worst[2]}), measured directly; they do a fixed amount of "
        "host work per epoch (EarlyStopping: a comparison and, on improvement, a "
        "host copy of the weights; FreezeUnfreeze: nothing outside phase changes), "
        "so their share shrinks as epochs grow. The best-of ratios of epoch and "
        f"step times scatter between {min(spread):.3f} and {max(spread):.3f}, on "
        "both sides of 1 and for multiplier 1 (which adds no operation to the step) "
        "as much as for 0.1: that scatter is the run-to-run noise of this shared "
        "machine, and it is as far as these timings resolve the in-graph cost of the "
        "discriminative learning rate (four element-wise operations per backbone "
        "weight and step).",
        "",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.rounds, args.epochs, args.samples)))
        return
    load = load_average()
    results = []
    for backend in args.backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--rounds",
                str(args.rounds),
                "--epochs",
                str(args.epochs),
                "--samples",
                str(args.samples),
            ],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    section = _section(results, args.rounds, args.epochs, args.samples, load)
    print(section)
    if not args.no_write:
        replace_section(BENCHMARKS, "callbacks", section)


if __name__ == "__main__":
    main()
