"""From a directory of image files to training batches: crop, batch, Mixup, prefetch.

The input pipeline of an image classifier trained from files, in `tf.data`, for a
TensorFlow or a JAX model (`KERAS_BACKEND=tensorflow|jax`; the pipeline is the same):

    class folders -> (file contents, label) -> RandomResizedCrop on the encoded
    bytes (a JPEG is decoded only inside its crop window) -> batch -> Mixup
    -> prefetch -> model.fit

Validation images take the layer's inference crop (the largest centred crop with the
output's aspect ratio), also decoded from the bytes. `keras.utils.
image_dataset_from_directory` is not used: it decodes and resizes every image to one
size before any augmentation, so a random-resized crop would then crop an already
squashed image at a fixed resolution instead of the original.

    python examples/files_to_batches.py --offline   # generated JPEGs, no download
    python examples/files_to_batches.py --data-dir DIR  # your DIR/<class>/<file>
    python examples/files_to_batches.py             # tf_flowers (tensorflow_datasets)

`--offline` writes a few hundred JPEGs of three classes (different scikit-image sample
photographs, random sizes and crops) to a temporary directory of class folders and
trains a small convnet on them for a few epochs (a minute or two on two CPU cores).
`--data-dir` reads your own directory of class folders the same way. Without either,
`tensorflow_datasets` downloads tf_flowers and its JPEG bytes are read without
decoding (`tfds.decode.SkipDecoding()`), so the same crop layer decodes only the crop
windows.
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_trainplus as ktp

AUTOTUNE = tf.data.AUTOTUNE


def write_class_folders(root, per_class=120, seed=0):
    """Class folders of JPEGs: each class is one sample photograph, randomly cropped
    and scaled (sides of 160-320 px). Returns the class names."""
    import skimage.data

    photos = {
        "astronaut": skimage.data.astronaut(),
        "cat": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
    }
    rng = np.random.default_rng(seed)
    for name, photo in photos.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        height, width = photo.shape[:2]
        for i in range(per_class):
            rows, cols = (int(s * rng.uniform(0.5, 1.0)) for s in (height, width))
            top = int(rng.integers(0, height - rows + 1))
            left = int(rng.integers(0, width - cols + 1))
            side = int(rng.integers(160, 321))
            crop = photo[top : top + rows, left : left + cols]
            size = (side, max(1, round(side * cols / rows)))
            image = tf.image.resize(crop, size, antialias=True)
            data = tf.io.encode_jpeg(tf.cast(tf.round(image), "uint8"), quality=90)
            tf.io.write_file(os.path.join(root, name, f"{i:04d}.jpg"), data)
    return sorted(photos)


def files_and_labels(root):
    """`(paths, labels, class_names)` of a directory of class folders."""
    class_names = sorted(
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
    )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for file in sorted(os.listdir(os.path.join(root, name))):
            paths.append(os.path.join(root, name, file))
            labels.append(label)
    return paths, labels, class_names


def folder_datasets(root, validation_fraction=0.2, seed=0):
    """`(train, validation, class_names)` datasets of `(file contents, label)`."""
    paths, labels, class_names = files_and_labels(root)
    order = np.random.default_rng(seed).permutation(len(paths))
    paths, labels = np.array(paths)[order], np.array(labels)[order]
    split = int(len(paths) * (1 - validation_fraction))

    def read(path, label):
        return tf.io.read_file(path), label

    def dataset(part):
        ds = tf.data.Dataset.from_tensor_slices((paths[part], labels[part]))
        return ds.map(read, num_parallel_calls=AUTOTUNE)

    return dataset(slice(None, split)), dataset(slice(split, None)), class_names


def tf_flowers_datasets():
    """tf_flowers as `(JPEG bytes, label)`: the images are left encoded."""
    import tensorflow_datasets as tfds

    (train, validation), info = tfds.load(
        "tf_flowers",
        split=["train[:85%]", "train[85%:]"],
        as_supervised=True,
        with_info=True,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    return train, validation, info.features["label"].names


def input_pipelines(train, validation, num_classes, size, batch_size, seed=0):
    """The recipe: crop the encoded images, batch, Mixup, prefetch."""
    crop = ktp.layers.RandomResizedCrop(
        size, size, horizontal_flip=True, dtype="uint8", seed=seed
    )
    mixup = ktp.layers.Mixup(alpha=0.2, num_classes=num_classes, seed=seed)
    train = (
        train.shuffle(10_000, seed=seed)
        .map(lambda x, y: (crop(x), y), num_parallel_calls=AUTOTUNE)
        .batch(batch_size)
        .map(mixup, num_parallel_calls=AUTOTUNE)  # float images, (B, K) labels
        .prefetch(AUTOTUNE)
    )
    validation = (
        validation.map(
            lambda x, y: (crop(x, training=False), tf.one_hot(y, num_classes)),
            num_parallel_calls=AUTOTUNE,
        )
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
    return train, validation


def convnet(size, num_classes):
    layers = [keras.Input((size, size, 3)), keras.layers.Rescaling(1 / 255)]
    for filters in (16, 32, 64):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
            # A short run: moving statistics that follow the last few dozen steps.
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes),
    ]
    return keras.Sequential(layers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--offline", action="store_true", help="generated JPEGs, no download"
    )
    source.add_argument("--data-dir", help="a directory of class folders of images")
    parser.add_argument(
        "--per-class", type=int, default=120, help="generated images per class"
    )
    parser.add_argument("--size", type=int, default=None, help="crop size")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        if args.offline or args.data_dir:
            root = args.data_dir or scratch
            if args.offline:
                write_class_folders(root, per_class=args.per_class)
            train, validation, class_names = folder_datasets(root)
            size, epochs = args.size or 64, args.epochs or 8
        else:
            train, validation, class_names = tf_flowers_datasets()
            size, epochs = args.size or 160, args.epochs or 10
        num_classes = len(class_names)
        train, validation = input_pipelines(
            train, validation, num_classes, size, args.batch_size
        )
        model = convnet(size, num_classes)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        print(
            f"{num_classes} classes {class_names}, crops of {size}x{size}, backend "
            f"{keras.backend.backend()}"
        )
        start = time.perf_counter()
        history = model.fit(train, validation_data=validation, epochs=epochs, verbose=2)
        accuracy = history.history["val_accuracy"][-1]
        print(
            f"validation accuracy {accuracy:.3f} after {epochs} epochs, "
            f"{time.perf_counter() - start:.0f} s"
        )
    return accuracy


if __name__ == "__main__":
    main()
