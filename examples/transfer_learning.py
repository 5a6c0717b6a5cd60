"""Transfer learning with FreezeUnfreeze, layer-wise rates and EarlyStopping.

Offline (the default, `--offline`): scikit-learn's bundled digits. A small KerasHub
`ResNetBackbone` (random init, built from its constructor) is pretrained on the
digits 0-4; a new head is then trained on a few labelled examples of the digits
5-9 in four ways, each with the same EarlyStopping:

- `freeze-unfreeze`: pretrained backbone, head trained alone for `--freeze-epochs`,
  then the backbone unfrozen from the top down, its stages at `0.1 * decay**i`
  times the head's learning rate (`LearningRateMultipliers` with `layer_decay`,
  `i` counted from the top stage, `decay` = `--layer-decay`);
- `layer-decay`: pretrained backbone, everything trained from the first step,
  the stages at `decay**i` times the head's rate (discriminative rates, no
  freezing);
- `fine-tune-all`: pretrained backbone, everything trained at one rate;
- `from-scratch`: same architecture, random weights.

It prints the test accuracy of each on the held-out digits 5-9 (about 3 minutes on
two CPU cores).

With `--dataset tf_flowers` or `--dataset cifar10` (needs `tensorflow_datasets` and
network access, not exercised by this project's tests) the backbone is a KerasHub
preset, e.g. `keras_hub.models.ResNetBackbone.from_preset("resnet_18_imagenet")`,
and the four variants fine-tune it (or its architecture from scratch) on the data
set; there is no pretraining step.

Usage:
    python examples/transfer_learning.py              # offline digits
    python examples/transfer_learning.py --dataset tf_flowers \
        --preset resnet_18_imagenet
"""

import argparse
import time

import keras
import keras_hub
import numpy as np

from keras_trainplus.callbacks import EarlyStopping
from keras_trainplus.callbacks import FreezeUnfreeze
from keras_trainplus.optimizers import LearningRateMultipliers
from keras_trainplus.optimizers import layer_decay

VARIANTS = ("freeze-unfreeze", "layer-decay", "fine-tune-all", "from-scratch")


def digits_splits(per_class, seed):
    """Pretraining data (digits 0-4) and few-shot splits of digits 5-9, 16x16 RGB."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((2, 2)))  # 8x8 -> 16x16
    images = np.repeat(images[..., None], 3, axis=-1).astype("float32")
    labels = digits.target
    rng = np.random.default_rng(seed)
    source = labels < 5
    pretrain = (images[source], labels[source])
    target = np.flatnonzero(~source)
    rng.shuffle(target)
    train, validation, test = [], [], []
    for digit in range(5, 10):
        members = target[labels[target] == digit]
        train += list(members[:per_class])
        validation += list(members[per_class : 2 * per_class])
        test += list(members[2 * per_class :])

    def take(index):
        return images[index], labels[index] - 5

    return pretrain, take(train), take(validation), take(test)


def tiny_resnet(image_shape):
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=image_shape,
    )


def classifier(backbone, classes, learning_rate, backbone_scale=None, decay=1.0):
    """A linear head on the backbone's pooled features, compiled with Adam.

    With `backbone_scale`, the backbone's stages train at `backbone_scale *
    decay**i` times the head's rate (`i` = 0 for the top stage).
    """
    inputs = keras.Input(backbone.input_shape[1:])
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    outputs = keras.layers.Dense(classes, name="head")(features)
    model = keras.Model(inputs, outputs)
    optimizer = keras.optimizers.Adam(learning_rate)
    if backbone_scale is not None:
        stages = layer_decay(backbone, decay)
        optimizer = LearningRateMultipliers(
            optimizer, {layer: backbone_scale * m for layer, m in stages.items()}
        )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def fine_tune(name, backbone, data, args):
    (x, y), (x_val, y_val), (x_test, y_test) = data
    scale = {"freeze-unfreeze": 0.1, "layer-decay": 1.0}.get(name)
    model = classifier(
        backbone,
        5 if args.offline else args.classes,
        args.learning_rate,
        backbone_scale=scale,
        decay=args.layer_decay,
    )
    stop = EarlyStopping(monitor="val_loss", patience=args.patience)
    callbacks = [stop]
    if name == "freeze-unfreeze":
        callbacks.insert(
            0,
            FreezeUnfreeze(
                backbone,
                freeze_epochs=args.freeze_epochs,
                unfreeze_every=2,
                # the optimizer's multipliers, 0.1 * decay**i per stage
                backbone_learning_rate_multiplier=None,
            ),
        )
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "name": name,
        "test_accuracy": accuracy,
        "epochs": len(history.history["loss"]),
        "best_epoch": stop.best_epoch + 1,
        "stop_reason": stop.stop_reason or "ran to the end",
        "seconds": seconds,
    }


def offline(args):
    keras.utils.set_random_seed(args.seed)
    pretrain, train, validation, test = digits_splits(args.per_class, args.seed)
    backbone = tiny_resnet(train[0].shape[1:])
    source = classifier(backbone, 5, 1e-3)
    source.fit(*pretrain, epochs=args.pretrain_epochs, batch_size=64, verbose=0)
    _, source_accuracy = source.evaluate(*pretrain, verbose=0)
    print(f"pretrained on digits 0-4: train accuracy {source_accuracy:.3f}")
    pretrained = backbone.get_weights()

    results = []
    for name in VARIANTS:
        keras.utils.set_random_seed(args.seed + 1)
        model_backbone = tiny_resnet(train[0].shape[1:])
        if name != "from-scratch":
            model_backbone.set_weights(pretrained)
        results.append(fine_tune(name, model_backbone, (train, validation, test), args))
    return results


def with_tfds(args):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    split = ["train[:70%]", "train[70%:85%]", "train[85%:]"]
    if args.dataset == "cifar10":
        split = ["train[:45000]", "train[45000:]", "test"]
    datasets, info = tfds.load(
        args.dataset, split=split, as_supervised=True, with_info=True
    )
    args.classes = info.features["label"].num_classes

    def arrays(dataset):
        dataset = dataset.map(
            lambda x, y: (tf.image.resize(x, (args.image_size,) * 2), y)
        )
        x, y = zip(*tfds.as_numpy(dataset))
        return np.stack(x).astype("float32"), np.array(y)

    data = [arrays(d) for d in datasets]
    results = []
    for name in VARIANTS:
        keras.utils.set_random_seed(args.seed + 1)
        backbone = keras_hub.models.ResNetBackbone.from_preset(
            args.preset, load_weights=name != "from-scratch"
        )
        results.append(fine_tune(name, backbone, data, args))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--offline",
        action="store_true",
        default=True,
        help="scikit-learn digits, no download (the default)",
    )
    parser.add_argument(
        "--dataset",
        choices=["tf_flowers", "cifar10"],
        default=None,
        help="use tensorflow_datasets instead (downloads)",
    )
    parser.add_argument("--preset", default="resnet_18_imagenet")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--freeze-epochs", type=int, default=3)
    parser.add_argument(
        "--layer-decay",
        type=float,
        default=0.5,
        help="learning-rate factor between adjacent backbone stages",
    )
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.offline = args.dataset is None
    results = offline(args) if args.offline else with_tfds(args)

    data = (
        f"digits 5-9, {args.per_class} labelled per class"
        if args.offline
        else args.dataset
    )
    print(f"\nFine-tuning on {data} ({keras.backend.backend()} backend):")
    print(
        f"{'variant':<16} {'test acc':>8} {'epochs':>6} {'best':>4}  "
        f"{'stopped by':<16} {'s':>6}"
    )
    for r in results:
        print(
            f"{r['name']:<16} {r['test_accuracy']:>8.3f} {r['epochs']:>6} "
            f"{r['best_epoch']:>4}  {r['stop_reason']:<16} {r['seconds']:>6.1f}"
        )


if __name__ == "__main__":
    main()
