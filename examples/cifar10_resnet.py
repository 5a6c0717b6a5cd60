"""A ResNet-style CIFAR-10 run: the ResNet augmentation recipe and a step schedule.

The recipe of He et al. (2016) scaled to 32x32 images: resize the short side to L
drawn uniformly from [32, 40] (`RandomScaleCrop`), take a random 32x32 crop, flip
horizontally; SGD with Nesterov momentum 0.9 (warmed up from 0.5 over the first
epoch) and weight decay 5e-4; the learning rate x0.1 at 50% and 75% of the epochs
(`StepDecay` in epochs).

    python examples/cifar10_resnet.py                 # CIFAR-10 via tensorflow_datasets
    python examples/cifar10_resnet.py --offline       # bundled digits, no download

What it prints: Keras progress bars, then the test accuracy and the learning rate at
the end. Expected runtime on 2 CPU cores: under a minute with `--offline` (digits,
8 epochs); CIFAR-10 with the defaults (30 epochs of ResNet-20) takes hours on a CPU and
minutes on a GPU.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import keras_trainplus as ktp


def load_data(offline):
    """(x_train, y_train), (x_test, y_test) as float32 RGB in [0, 1], 32x32."""
    if offline:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = tf.image.resize(digits.images[..., None] / 16.0, (32, 32)).numpy()
        images = np.repeat(images, 3, axis=-1).astype("float32")
        labels = digits.target.astype("int32")
        rng = np.random.default_rng(0)
        order = rng.permutation(len(images))
        split = int(0.8 * len(images))
        train, test = order[:split], order[split:]
        return (images[train], labels[train]), (images[test], labels[test])
    import tensorflow_datasets as tfds

    (x_train, y_train), (x_test, y_test) = tfds.as_numpy(
        tfds.load("cifar10", split=["train", "test"], batch_size=-1, as_supervised=True)
    )
    return (
        (x_train.astype("float32") / 255.0, y_train.astype("int32")),
        (x_test.astype("float32") / 255.0, y_test.astype("int32")),
    )


def batch_norm():
    # Moving averages with momentum 0.9 (PyTorch's 0.1): with few steps per epoch,
    # Keras's default 0.99 leaves the inference statistics far from the data's.
    return keras.layers.BatchNormalization(momentum=0.9)


def residual_block(x, filters, stride):
    shortcut = x
    x = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, stride, use_bias=False)(shortcut)
        shortcut = batch_norm()(shortcut)
    return keras.layers.ReLU()(x + shortcut)


def resnet(depth, num_classes, width=16):
    """ResNet-`depth` for 32x32 images (depth = 6n + 2), He et al. (2016) sec. 4.2."""
    blocks = (depth - 2) // 6
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(batch_norm()(x))
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks):
            x = residual_block(x, filters, 2 if (block == 0 and stage > 0) else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="bundled digits")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--depth", type=int, default=None, help="6n + 2")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    epochs = args.epochs or (8 if args.offline else 30)
    depth = args.depth or (8 if args.offline else 20)

    (x_train, y_train), (x_test, y_test) = load_data(args.offline)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    # keras.layers.Pipeline (not Sequential) runs in tf.data under every backend.
    augment = keras.layers.Pipeline(
        [
            ktp.layers.RandomScaleCrop(32, 32, short_side_range=(32, 40), seed=0),
            keras.layers.RandomFlip("horizontal", seed=0),
        ]
    )
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=0)
        .batch(args.batch_size)
        .map(lambda x, y: (augment(x), y), tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    schedule = ktp.schedules.StepDecay(
        0.1,
        boundaries=sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)}),
        decay_rate=0.1,
        steps_per_epoch=steps_per_epoch,
    )
    optimizer = ktp.optimizers.Nesterov(
        learning_rate=schedule,
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_steps=steps_per_epoch,
        weight_decay=5e-4,
    )
    model = resnet(depth, num_classes=10)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=True,
    )
    start = time.perf_counter()
    model.fit(train, epochs=epochs, validation_data=(x_test, y_test))
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(
        f"\nResNet-{depth}, {epochs} epochs in {time.perf_counter() - start:.0f} s: "
        f"test accuracy {accuracy:.4f}; final learning rate "
        f"{float(keras.ops.convert_to_numpy(optimizer.learning_rate)):.2e}"
    )


if __name__ == "__main__":
    main()
