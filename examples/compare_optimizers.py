"""Compare Keras's Adam and SGD(nesterov) with keras_trainplus's optimizers.

Trains the same small convnet (same initial weights) with each optimizer for a few
epochs and prints validation accuracy and wall time:

    python examples/compare_optimizers.py --offline     # sklearn's 8x8 digits

Without `--offline` it uses CIFAR-10 from `tensorflow_datasets` when that package is
installed (downloading it), else the digits. Runs on any Keras backend
(`KERAS_BACKEND=jax|tensorflow|torch`); with `--offline` it takes well under two
minutes on 2 CPU cores. For LookAhead and Ranger the accuracy with the slow weights
(`optimizer.swap_slow_weights()`) is shown as well: after `fit` the model holds the
fast weights.
"""

import argparse
import time

import keras
import numpy as np

import keras_trainplus as ktp


def load_digits():
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:]), "sklearn digits (8x8)"


def load_cifar10():
    import tensorflow_datasets as tfds

    train, test = tfds.as_numpy(
        tfds.load(
            "cifar10",
            split=["train[:10000]", "test[:2000]"],
            batch_size=-1,
            as_supervised=True,
        )
    )
    scale = lambda x: (x / 255.0).astype("float32")  # noqa: E731
    return (scale(train[0]), train[1]), (scale(test[0]), test[1]), "CIFAR-10 (10k/2k)"


def convnet(input_shape):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )


OPTIMIZERS = {
    "Adam (Keras)": lambda: keras.optimizers.Adam(3e-3),
    "SGD nesterov (Keras)": lambda: keras.optimizers.SGD(
        0.05, momentum=0.9, nesterov=True
    ),
    "Nesterov": lambda: ktp.optimizers.Nesterov(
        0.05, momentum=0.9, initial_momentum=0.5, momentum_warmup_steps=50
    ),
    # RAdam's rectification acts as a built-in warm-up (r_t grows from ~0.1 over
    # the first few hundred steps), so it and Ranger take a larger peak rate.
    "RAdam": lambda: ktp.optimizers.RAdam(1e-2),
    "LookAhead(Adam)": lambda: ktp.optimizers.LookAhead(keras.optimizers.Adam(3e-3)),
    "Ranger": lambda: ktp.optimizers.Ranger(1e-2),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="use the bundled digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    loader = load_digits
    if not args.offline:
        try:
            import tensorflow_datasets  # noqa: F401

            loader = load_cifar10
        except ImportError:
            print("tensorflow_datasets is not installed: using the digits.")
    (x_train, y_train), (x_val, y_val), name = loader()
    print(
        f"{name}: {len(x_train)} training, {len(x_val)} validation images; "
        f"backend {keras.backend.backend()}, {args.epochs} epochs"
    )

    keras.utils.set_random_seed(0)
    initial = convnet(x_train.shape[1:]).get_weights()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rows = []
    for label, make in OPTIMIZERS.items():
        keras.utils.set_random_seed(1)
        model = convnet(x_train.shape[1:])
        model.set_weights(initial)
        optimizer = make()
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(
            x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0
        )
        seconds = time.perf_counter() - start
        accuracy = model.evaluate(x_val, y_val, verbose=0)[1]
        slow = "-"
        if isinstance(optimizer, ktp.optimizers.LookAhead):
            optimizer.swap_slow_weights()
            slow = f"{model.evaluate(x_val, y_val, verbose=0)[1]:.3f}"
            optimizer.swap_slow_weights()
        rows.append((label, f"{accuracy:.3f}", slow, f"{seconds:.1f}"))

    header = ("optimizer", "val accuracy", "slow weights", "fit seconds")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
