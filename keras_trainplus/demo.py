"""keras_trainplus end to end, offline, on scikit-learn's bundled handwritten digits.

Run `python -m keras_trainplus.demo` (or the `keras-trainplus-demo` console script).
It trains small convnets on the 1,797 8x8 digits that ship with scikit-learn and shows,
with Keras progress bars:

1. a convnet trained with `Ranger` + `WarmUp(CosineDecay)`, `RandomAffine` and `Mixup`
   in `tf.data`, and `EarlyStopping`;
2. a snapshot ensemble (`SnapshotEnsemble`, cyclic cosine rate) against its single
   last snapshot and against the model of step 1;
3. transfer learning: a backbone pretrained on digits 0-4 fine-tuned on a few
   examples of digits 5-9 with `FreezeUnfreeze`, against training from scratch.

At the end it prints a results table and writes PNG plots (learning-rate schedules,
augmentation gallery, learning curves, ensemble comparison) and `results.json` to the
output directory it names. A few minutes on 2 CPU cores; `--quick` runs a smoke
version in well under a minute of training. `--backend` sets `KERAS_BACKEND`.
"""

import argparse
import os
import sys
import tempfile


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m keras_trainplus.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few epochs, tiny budgets"
    )
    parser.add_argument(
        "--output-dir",
        default=os.path.join(tempfile.gettempdir(), "keras_trainplus_demo"),
        help="where the PNG plots and results.json go (default: %(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        default=None,
        help="Keras backend (sets KERAS_BACKEND; default: the current one)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras fit verbosity"
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the demo; returns the results as a dict."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse_args(argv)
    if args.backend and args.backend != os.environ.get("KERAS_BACKEND"):
        # Keras reads KERAS_BACKEND once, at import (which `python -m` has already
        # done through the package): start again in a process that has it set.
        os.environ["KERAS_BACKEND"] = args.backend
        os.execv(sys.executable, [sys.executable, "-m", "keras_trainplus.demo", *argv])
    from keras_trainplus import _demo_runs

    return _demo_runs.run(args)


if __name__ == "__main__":
    main()
