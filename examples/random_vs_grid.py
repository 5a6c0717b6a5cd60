"""Random search vs grid search at an equal trial budget (Bergstra & Bengio 2012).

The paper's claim: with the same number of trials, random search finds better
hyperparameters than a grid, because only a few hyperparameters matter and a grid
of `k^d` points tries only `k` distinct values of each, whereas `n` random trials
try `n` distinct values of every one.

The experiment: a small MLP (64-64-10) on scikit-learn's digits (bundled, 1797
images of 8x8), three hyperparameters searched with `keras_trainplus.tuning`
(Adam's learning rate in [1e-4, 1e-1] and weight decay in [1e-6, 1e-2], both on a
log scale, and the dropout rate in [0, 0.5]). For each seed:

- random search, 27 trials: the best validation accuracy after the first `n`
  trials is random search's result at budget `n` (a random search of `n` trials
  is the first `n` trials of a longer one);
- grid search over the full 2x2x2 grid (8 trials) and the full 3x3x3 grid (27).

It prints a table (best validation accuracy at budgets 8 and 27, mean and
standard deviation over seeds, and the number of distinct learning rates tried)
and writes `random_vs_grid.png` (best accuracy against trials, and accuracy
against learning rate for one seed) and `random_vs_grid.json` (every trial) to
`--output-dir`. With `--benchmarks BENCHMARKS.md` it also writes the table into
that file's "tuning" section; `--from-json random_vs_grid.json` redraws all of it
from a previous run without training.

Expected runtime: 62 trials of 4 epochs per seed, about 1.7 s of CPU each with
TensorFlow, so about 2 minutes per seed on 2 idle CPU cores; measured on a shared
2-core machine: 10 minutes for the default 3 seeds at load average 4 to 6, 31
minutes at load average 10. `--seeds 1` is the quick run. The results are
reproducible: both of those runs gave the same table. Offline by default;
`--tfds mnist` (or another image classification data set of tensorflow_datasets)
downloads 6000 training images instead, flattened and scaled to [0, 1].

Usage:

    python examples/random_vs_grid.py --output-dir docs/images
"""

import argparse
import json
import os
import sys
import tempfile
import time

import keras
import numpy as np

import keras_trainplus as ktp  # noqa: F401
from keras_trainplus import tuning
from keras_trainplus._files import atomic_path

# The benchmark scripts' helpers: machine description, BENCHMARKS.md sections.
sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
    ),
)
from _markdown import load_average  # noqa: E402
from _markdown import machine  # noqa: E402
from _markdown import replace_section  # noqa: E402
from _markdown import write_text  # noqa: E402

BUDGET = 27
GRIDS = (2, 3)  # points per hyperparameter: 2^3 = 8 and 3^3 = 27 trials
MARKER = "tuning"


def load_digits(seed=0):
    """scikit-learn's bundled digits, scaled to [0, 1], split 2/3 train, 1/3 val."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=1 / 3, stratify=y, random_state=seed
    )
    return (x_train, y_train.astype("int32")), (x_val, y_val.astype("int32"))


def load_tfds(name):
    """6000 training and 2000 test images of a tensorflow_datasets set, flattened."""
    import tensorflow_datasets as tfds

    def arrays(split):
        x, y = tfds.as_numpy(
            tfds.load(name, split=split, as_supervised=True, batch_size=-1)
        )
        return x.reshape(len(x), -1).astype("float32") / 255.0, y.astype("int32")

    return arrays("train[:6000]"), arrays("test[:2000]")


def make_build(input_dim, classes, grid_size):
    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((input_dim,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dropout(tuning.dropout_rate(hp, grid_size=grid_size)),
                keras.layers.Dense(classes, activation="softmax"),
            ]
        )
        optimizer = tuning.optimizer(
            hp,
            families="adam",
            learning_rate=(1e-4, 1e-1),
            weight_decay=(1e-6, 1e-2),
            lookahead=False,
            grid_size=grid_size,
        )
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    return build


def run_search(strategy, grid_size, trials, data, seed, epochs, directory):
    (x_train, y_train), validation = data
    classes = int(max(y_train.max(), validation[1].max())) + 1
    keras.utils.set_random_seed(seed)
    result = tuning.search(
        make_build(x_train.shape[1], classes, grid_size),
        (x_train, y_train),
        validation,
        strategy=strategy,
        max_trials=trials,
        objective="val_accuracy",
        epochs=epochs,
        batch_size=64,
        seed=seed,
        directory=directory,
        project_name=f"{strategy}_{grid_size}_{seed}",
        verbose=0,
    )
    return [
        {"score": t["score"], "values": t["values"]}
        for t in result.trials
        if t["status"] == "COMPLETED"
    ]


def summarize(runs):
    """Mean and std over seeds of the best accuracy at each budget, per strategy."""
    rows = []
    random_curves = np.array(
        [np.maximum.accumulate([t["score"] for t in r["random"]]) for r in runs]
    )
    for size in GRIDS:
        budget = size**3
        grid = np.array([max(t["score"] for t in r[f"grid{size}"]) for r in runs])
        rand = random_curves[:, budget - 1]
        lr_random = np.mean(
            [
                len({t["values"]["learning_rate"] for t in r["random"][:budget]})
                for r in runs
            ]
        )
        lr_grid = np.mean(
            [
                len({t["values"]["learning_rate"] for t in r[f"grid{size}"]})
                for r in runs
            ]
        )
        rows.append(
            {
                "budget": budget,
                "random_mean": float(rand.mean()),
                "random_std": float(rand.std()),
                "grid_mean": float(grid.mean()),
                "grid_std": float(grid.std()),
                "random_wins": int(np.sum(rand > grid)),
                "ties": int(np.sum(rand == grid)),
                "random_learning_rates": float(lr_random),
                "grid_learning_rates": float(lr_grid),
            }
        )
    return rows, random_curves


def table(rows, seeds):
    lines = [
        "| trials | random search: best val. accuracy | grid search: best val. "
        "accuracy | random better / tied (of "
        f"{seeds} seeds) | distinct learning rates tried (random / grid) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['budget']} | {r['random_mean']:.4f} ± {r['random_std']:.4f} | "
            f"{r['grid_mean']:.4f} ± {r['grid_std']:.4f} | "
            f"{r['random_wins']} / {r['ties']} | "
            f"{r['random_learning_rates']:.0f} / {r['grid_learning_rates']:.0f} |"
        )
    return "\n".join(lines)


def plot(runs, random_curves, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    trials = np.arange(1, BUDGET + 1)
    mean, std = random_curves.mean(0), random_curves.std(0)
    left.plot(trials, mean, color="C0", label="random search")
    left.fill_between(trials, mean - std, mean + std, color="C0", alpha=0.2)
    left.errorbar(
        [r["budget"] for r in rows],
        [r["grid_mean"] for r in rows],
        yerr=[r["grid_std"] for r in rows],
        fmt="s",
        color="C3",
        capsize=4,
        label="grid search (full 2³ and 3³ grids)",
    )
    # Zoom on the budgets compared; random search's first few trials fall below.
    bottom = min(r["grid_mean"] - r["grid_std"] for r in rows) - 0.03
    left.set_ylim(bottom, min(1.0, float(mean.max() + std.max()) + 0.01))
    left.set_xlabel("trials")
    left.set_ylabel("best validation accuracy")
    seeds = f"{len(runs)} seed" + ("s" if len(runs) > 1 else "")
    left.set_title(f"Best found vs budget (mean ± std, {seeds})")
    left.legend(loc="lower right")
    left.grid(alpha=0.3)

    first = runs[0]
    for key, style, label in (
        ("random", dict(marker="o", color="C0"), "random, 27 trials"),
        (f"grid{GRIDS[-1]}", dict(marker="s", color="C3"), "grid 3³, 27 trials"),
    ):
        rates = [t["values"]["learning_rate"] for t in first[key]]
        scores = [t["score"] for t in first[key]]
        right.scatter(rates, scores, label=label, alpha=0.7, **style)
    right.set_xscale("log")
    right.set_xlabel("learning rate")
    right.set_ylabel("validation accuracy")
    right.set_title("Each trial's accuracy vs its learning rate (seed 0)")
    right.legend(loc="lower right")
    right.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    plt.close(figure)


def run_experiment(args):
    """Runs every search; returns the record that `report` turns into outputs."""
    data = load_tfds(args.tfds) if args.tfds else load_digits()
    started = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="random_vs_grid_") as directory:
        for seed in range(args.seeds):
            run = {
                "seed": seed,
                "random": run_search(
                    "random", None, BUDGET, data, seed, args.epochs, directory
                ),
            }
            for size in GRIDS:
                run[f"grid{size}"] = run_search(
                    "grid", size, None, data, seed, args.epochs, directory
                )
            runs.append(run)
            elapsed = time.perf_counter() - started
            print(f"seed {seed} done ({elapsed:.0f} s)", flush=True)
    return {
        "dataset": f"tfds {args.tfds}" if args.tfds else "scikit-learn digits",
        "epochs": args.epochs,
        "machine": (
            f"{machine()} (shared with other jobs, load average {load_average()} at "
            f"the end; 1, 5, 15 min), Keras {keras.__version__} on "
            f"{keras.backend.backend()}"
        ),
        "elapsed_s": time.perf_counter() - started,
        "runs": runs,
    }


def report(record, output_dir, benchmarks):
    """Prints the table and writes the PNG, the JSON and the BENCHMARKS section."""
    runs = record["runs"]
    rows, random_curves = summarize(runs)
    markdown = table(rows, len(runs))
    trials = sum(
        len(trials) for run in runs for key, trials in run.items() if key != "seed"
    )
    text = (
        "### Random vs grid search (`examples/random_vs_grid.py`)\n\n"
        f"{record['dataset']}, MLP 64-64-10, {record['epochs']} epochs per trial, "
        "Adam; searched: learning rate [1e-4, 1e-1] and weight decay [1e-6, 1e-2] "
        "(log scale), dropout [0, 0.5]. Random search: 27 trials; grid search: "
        "the full 2³ and 3³ grids. Mean ± standard deviation over "
        f"{len(runs)} seeds of the best validation accuracy found.\n\n"
        f"{markdown}\n\n"
        "![random vs grid](docs/images/random_vs_grid.png)\n\n"
        f"Machine: {record['machine']}; {trials} trials in "
        f"{record['elapsed_s']:.0f} s."
    )
    print(markdown)
    print(record["machine"])
    os.makedirs(output_dir, exist_ok=True)
    plot(runs, random_curves, rows, os.path.join(output_dir, "random_vs_grid.png"))
    write_text(
        os.path.join(output_dir, "random_vs_grid.json"),
        json.dumps(dict(record, rows=rows), indent=1),
    )
    print(f"wrote {output_dir}/random_vs_grid.png and random_vs_grid.json")
    if benchmarks:
        replace_section(benchmarks, MARKER, text)
        print(f"wrote the table into {benchmarks}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--offline",
        action="store_true",
        default=True,
        help="use scikit-learn's bundled digits (the default)",
    )
    source.add_argument(
        "--tfds", metavar="NAME", help="a tensorflow_datasets image data set instead"
    )
    source.add_argument(
        "--from-json",
        metavar="PATH",
        help="redraw the table and plot from a random_vs_grid.json, no training",
    )
    parser.add_argument("--seeds", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("--epochs", type=int, default=4, help="per trial (default 4)")
    parser.add_argument(
        "--output-dir", default="random_vs_grid_output", help="for the PNG and JSON"
    )
    parser.add_argument(
        "--benchmarks", metavar="PATH", help="write the table into this BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            record = json.load(f)
    else:
        record = run_experiment(args)
    report(record, args.output_dir, args.benchmarks)


if __name__ == "__main__":
    main()
