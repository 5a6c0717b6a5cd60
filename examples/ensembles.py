"""Ensembles on a fixed epoch budget: single model, snapshots, independent models, SWA.

On scikit-learn's bundled handwritten digits (offline, the default) or CIFAR-10 from
TensorFlow Datasets (`--dataset cifar10`, downloads it), for several seeds, with the
same total number of training epochs for every method:

- single model: SGD with momentum and a cosine-decayed rate over the whole budget;
- snapshot ensemble: one run of the same budget with `SnapshotEnsemble` (M cycles of
  the paper's restarted cosine rate), averaging the M snapshots' probabilities; the
  last snapshot alone is reported too;
- M independent models: each trained from its own initialization for budget / M
  epochs (cosine decay), probabilities averaged;
- SWA: the budget with a constant rate, averaging the weights of the last quarter
  of the epochs at a lower rate (`StochasticWeightAveraging`).

A reference row trains M independent models for the full budget each (M times the
cost), the setting behind the "ensembles add about 2%" of Stanford CS231n's notes.
Test accuracy is reported as mean and standard deviation over the seeds, and the
table is written into the `ensembles` section of BENCHMARKS.md.

Usage:
    python examples/ensembles.py                 # digits, 3 seeds, writes BENCHMARKS.md
    python examples/ensembles.py --dataset cifar10 --epochs 40 --no-write
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np

from keras_trainplus.callbacks import SnapshotEnsemble
from keras_trainplus.callbacks import StochasticWeightAveraging
from keras_trainplus.ensemble import AveragingEnsemble

# The benchmark scripts' helpers: machine description, BENCHMARKS.md sections.
sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
    ),
)
from _markdown import BENCHMARKS  # noqa: E402
from _markdown import machine  # noqa: E402
from _markdown import replace_section  # noqa: E402


def load_digits(seed=0):
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.4, stratify=y, random_state=seed
    )
    return (x_train, y_train), (x_test, y_test)


def load_cifar10():
    import tensorflow_datasets as tfds

    def arrays(split):
        images, labels = tfds.as_numpy(
            tfds.load("cifar10", split=split, as_supervised=True, batch_size=-1)
        )
        return (images / 255.0).astype("float32"), labels

    return arrays("train"), arrays("test")


def make_model(input_shape, classes, seed):
    keras.utils.set_random_seed(seed)
    if len(input_shape) == 1:
        layers = [
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    else:
        layers = [
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    return keras.Sequential([keras.Input(input_shape)] + layers)


def train(model, data, epochs, learning_rate, callbacks=(), batch_size=32):
    (x, y), _ = data
    model.compile(
        keras.optimizers.SGD(learning_rate, momentum=0.9),
        "sparse_categorical_crossentropy",
    )
    model.fit(
        x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks)
    )
    return model


def cosine(data, epochs, peak, batch_size=32):
    steps = epochs * -(-len(data[0][0]) // batch_size)
    return keras.optimizers.schedules.CosineDecay(peak, steps)


def accuracy(model, data):
    _, (x, y) = data
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def run_seed(data, seed, epochs, cycles, peak, folder):
    shape, classes = data[0][0].shape[1:], int(data[0][1].max()) + 1
    results = {}

    model = make_model(shape, classes, seed)
    results["single model"] = accuracy(
        train(model, data, epochs, cosine(data, epochs, peak)), data
    )

    snapshots = SnapshotEnsemble(os.path.join(folder, f"snapshots-{seed}"), cycles)
    model = train(make_model(shape, classes, seed), data, epochs, peak, [snapshots])
    results[f"snapshot ensemble (M={cycles})"] = accuracy(
        snapshots.build_ensemble(), data
    )
    results["last snapshot alone"] = accuracy(model, data)

    short = epochs // cycles
    members = [
        train(
            make_model(shape, classes, 1000 * seed + i),
            data,
            short,
            cosine(data, short, peak),
        )
        for i in range(cycles)
    ]
    results[f"{cycles} independent models ({short} epochs each)"] = accuracy(
        AveragingEnsemble(members), data
    )

    swa = StochasticWeightAveraging(
        start_epoch=epochs - max(1, epochs // 4), swa_learning_rate=peak / 5
    )
    model = train(make_model(shape, classes, seed), data, epochs, peak, [swa])
    results["SWA (last quarter averaged)"] = accuracy(model, data)

    members = [
        train(
            make_model(shape, classes, 2000 * seed + i),
            data,
            epochs,
            cosine(data, epochs, peak),
        )
        for i in range(cycles)
    ]
    results[
        f"reference: {cycles} independent models, {epochs} epochs each ({cycles}x cost)"
    ] = accuracy(AveragingEnsemble(members), data)
    return results


def gains(all_results, baseline):
    """Mean and spread over seeds of each method's per-seed gain over `baseline`."""
    base = np.array([r[baseline] for r in all_results])
    parts = []
    for name in all_results[0]:
        if name == baseline:
            continue
        delta = 100 * (np.array([r[name] for r in all_results]) - base)
        spread = delta.std(ddof=1) if len(delta) > 1 else float("nan")
        parts.append(f"{name}: {delta.mean():+.2f} ± {spread:.2f} points")
    return "; ".join(parts)


def table(all_results, baseline):
    names = list(all_results[0])
    lines = [
        "| method | test accuracy (mean ± std) | vs single model | per seed |",
        "|---|---|---|---|",
    ]
    base = np.array([r[baseline] for r in all_results])
    for name in names:
        values = np.array([r[name] for r in all_results])
        delta = "" if name == baseline else f"{100 * np.mean(values - base):+.2f} pts"
        per_seed = ", ".join(f"{100 * v:.2f}" for v in values)
        spread = values.std(ddof=1) if len(values) > 1 else float("nan")
        lines.append(
            f"| {name} | {100 * values.mean():.2f} ± {100 * spread:.2f} % "
            f"| {delta} | {per_seed} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    parser.add_argument(
        "--epochs", type=int, default=40, help="total budget per method"
    )
    parser.add_argument("--cycles", type=int, default=5, help="snapshots / members (M)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument(
        "--no-write", action="store_true", help="do not edit BENCHMARKS.md"
    )
    args = parser.parse_args()

    started = time.time()
    all_results = []
    with tempfile.TemporaryDirectory() as folder:
        fixed = load_cifar10() if args.dataset == "cifar10" else None
        for seed in range(args.seeds):
            data = load_digits(seed) if fixed is None else fixed
            test_size = len(data[1][1])
            results = run_seed(
                data, seed, args.epochs, args.cycles, args.learning_rate, folder
            )
            all_results.append(results)
            print(
                f"seed {seed}: "
                + ", ".join(f"{k}: {100 * v:.2f}" for k, v in results.items())
            )
    elapsed = time.time() - started
    body = table(all_results, "single model")
    print(body)

    dataset = (
        "scikit-learn digits (1797 8x8 images; a stratified 60/40 train/test split "
        "drawn per seed), MLP 64-128-10 with dropout 0.2"
        if args.dataset == "digits"
        else "CIFAR-10 (TensorFlow Datasets), small convnet"
    )
    varying = (
        "split, initializations and shuffling"
        if fixed is None
        else "initializations and shuffling"
    )
    text = f"""## Ensembles (`examples/ensembles.py`)

{dataset}; SGD with momentum 0.9, batch 32, peak rate {args.learning_rate}; every method
gets the same budget of {args.epochs} epochs, except the last (reference) row;
{args.seeds} seeds (the {varying} change with the seed).
Snapshot ensemble: one run with `SnapshotEnsemble(num_snapshots={args.cycles})`
driving the paper's restarted cosine rate; independent models: {args.cycles} models
of {args.epochs // args.cycles} epochs (cosine decay), probabilities averaged; SWA:
constant rate, then the weights of the last {max(1, args.epochs // 4)} epochs averaged
at a fifth of the rate. Accuracy on the held-out split, in %; "vs single model" is the
mean over seeds of the per-seed difference.

{body}

Measured by `python examples/ensembles.py` on {machine()} (a shared, loaded
machine), Keras {keras.__version__} with the {keras.backend.backend()} backend, in
{elapsed / 60:.1f} min.

Gain over the single model, mean ± standard deviation over seeds of the per-seed
difference: {gains(all_results, "single model")}. One test image is
{100 / test_size:.2f} points here ({test_size} test images per seed).
"""
    print(text)
    if not args.no_write:
        replace_section(BENCHMARKS, "ensembles", text)


if __name__ == "__main__":
    main()
