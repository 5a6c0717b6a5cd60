"""The experiments of `python -m keras_trainplus.demo` (see `keras_trainplus.demo`)."""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

import keras_trainplus as ktp
from keras_trainplus import _demo_plots
from keras_trainplus._files import atomic_path

NUM_CLASSES = 10
BATCH_SIZE = 64
# Rows carry their task (accuracies compare within a task only) and its chance level.
DIGITS = "digits 0-9"


def load_digits(seed):
    """scikit-learn's 8x8 digits as float images in [0, 1], split 60/20/20."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    labels = digits.target.astype("int32")
    x_train, x_rest, y_train, y_rest = train_test_split(
        images, labels, test_size=0.4, stratify=labels, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def make_model(num_classes, name):
    """A small convnet whose feature extractor is the sub-model named `backbone`."""
    layers = keras.layers
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            layers.BatchNormalization(momentum=0.9, name="bn1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(name="pool"),
            layers.BatchNormalization(momentum=0.9, name="bn2"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3"),
            layers.GlobalAveragePooling2D(name="gap"),
        ],
        name="backbone",
    )
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            backbone,
            layers.Dropout(0.2, name="dropout"),
            layers.Dense(num_classes, name="head"),
        ],
        name=name,
    )


def compile_model(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def one_hot(labels, num_classes=NUM_CLASSES):
    return keras.utils.to_categorical(labels, num_classes).astype("float32")


def train_dataset(x, y, seed, augment=None, mixup=None, num_classes=NUM_CLASSES):
    """Shuffled batches; `augment` per batch of images, `mixup` on (images, labels)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    ds = ds.batch(BATCH_SIZE)
    if augment is not None:
        ds = ds.map(lambda images, labels: (augment(images), labels))
    if mixup is not None:
        ds = ds.map(mixup)
    else:
        ds = ds.map(lambda images, labels: (images, tf.one_hot(labels, num_classes)))
    return ds.prefetch(tf.data.AUTOTUNE)


def accuracy(model, x, y):
    # One direct call on the few hundred test images: `predict` would build and
    # trace a new function per model, and TensorFlow warns of frequent retracing
    # after a handful of the demo's models.
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def run_main_model(data, args, budget):
    """Ranger + WarmUp(CosineDecay); RandomAffine, Mixup in tf.data; EarlyStopping."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    steps_per_epoch = -(-len(x_train) // BATCH_SIZE)
    total_steps = budget["epochs"] * steps_per_epoch
    warmup_steps = 2 * steps_per_epoch
    schedule = ktp.schedules.WarmUp(
        ktp.schedules.CosineDecay(3e-3, decay_steps=total_steps - warmup_steps),
        warmup_steps=warmup_steps,
    )
    augment = ktp.layers.RandomAffine(
        rotation=0.05, translation=0.1, zoom=0.1, shear=0.1, seed=args.seed
    )
    mixup = ktp.layers.Mixup(alpha=0.2, num_classes=NUM_CLASSES, seed=args.seed)
    model = make_model(NUM_CLASSES, "ranger_convnet")
    compile_model(model, ktp.optimizers.Ranger(learning_rate=schedule))
    early_stopping = ktp.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=budget["patience"], restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        train_dataset(x_train, y_train, args.seed, augment, mixup),
        validation_data=(x_val, one_hot(y_val)),
        epochs=budget["epochs"],
        shuffle=False,  # the dataset shuffles
        callbacks=[early_stopping],
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    row = {
        "run": "Ranger + WarmUp(CosineDecay) + RandomAffine + Mixup",
        "task": DIGITS,
        "chance": 1 / NUM_CLASSES,
        "test_accuracy": accuracy(model, x_test, y_test),
        "epochs": len(history.history["loss"]),
        "seconds": seconds,
        "note": f"early stopping: {early_stopping.stop_reason or 'ran all epochs'}",
    }
    return row, history.history, schedule, augment, mixup


def run_snapshot_ensemble(data, args, budget, directory):
    """One run with a cyclic cosine rate; the snapshot ensemble vs its last snapshot."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    model = make_model(NUM_CLASSES, "snapshot_convnet")
    compile_model(model, ktp.optimizers.Nesterov(learning_rate=0.05, momentum=0.9))
    snapshots = ktp.callbacks.SnapshotEnsemble(
        directory, num_snapshots=budget["snapshots"]
    )
    start = time.perf_counter()
    model.fit(
        train_dataset(x_train, y_train, args.seed + 1),
        validation_data=(x_val, one_hot(y_val)),
        epochs=budget["snapshot_epochs"],
        shuffle=False,  # the dataset shuffles
        callbacks=[snapshots],
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    ensemble = snapshots.build_ensemble(method="probabilities")
    members = [accuracy(member, x_test, y_test) for member in ensemble.members]
    rows = [
        {
            "run": "single model (last snapshot)",
            "task": DIGITS,
            "chance": 1 / NUM_CLASSES,
            "test_accuracy": members[-1],
            "epochs": budget["snapshot_epochs"],
            "seconds": seconds,
            "note": "Nesterov, cyclic cosine rate",
        },
        {
            "run": f"snapshot ensemble (M={len(members)})",
            "task": DIGITS,
            "chance": 1 / NUM_CLASSES,
            "test_accuracy": accuracy(ensemble, x_test, y_test),
            "epochs": budget["snapshot_epochs"],
            "seconds": seconds,
            "note": "same run, averaged probabilities",
        },
    ]
    return rows, members


def run_transfer(data, args, budget):
    """Pretrain on digits 0-4, fine-tune on a few examples of 5-9; vs from scratch."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    low_train, low_val = y_train < 5, y_val < 5
    source = make_model(5, "source")
    compile_model(source, keras.optimizers.Adam(2e-3))
    source.fit(
        x_train[low_train],
        one_hot(y_train[low_train], 5),
        validation_data=(x_val[low_val], one_hot(y_val[low_val], 5)),
        epochs=budget["pretrain_epochs"],
        batch_size=BATCH_SIZE,
        verbose=args.verbose,
    )
    rng = np.random.default_rng(args.seed)
    high = np.flatnonzero(y_train >= 5)
    few = rng.choice(high, size=budget["few_shots"], replace=False)
    x_few, y_few = x_train[few], one_hot(y_train[few] - 5, 5)
    high_val, high_test = y_val >= 5, y_test >= 5
    validation = (x_val[high_val], one_hot(y_val[high_val] - 5, 5))
    task = f"digits 5-9, {budget['few_shots']} examples"
    rows = []
    for label in ("from scratch", "FreezeUnfreeze fine-tuning"):
        model = make_model(5, "target")
        callbacks = [
            ktp.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=budget["patience"]
            )
        ]
        optimizer = keras.optimizers.Adam(2e-3)
        if label != "from scratch":
            backbone = model.get_layer("backbone")
            backbone.set_weights(source.get_layer("backbone").get_weights())
            callbacks.append(
                ktp.callbacks.FreezeUnfreeze(
                    backbone,
                    freeze_epochs=budget["freeze_epochs"],
                    backbone_learning_rate_multiplier=0.1,
                )
            )
            optimizer = ktp.optimizers.LearningRateMultipliers(
                optimizer, {backbone: 0.1}
            )
        compile_model(model, optimizer)
        start = time.perf_counter()
        history = model.fit(
            x_few,
            y_few,
            validation_data=validation,
            epochs=budget["finetune_epochs"],
            batch_size=32,
            callbacks=callbacks,
            verbose=args.verbose,
        )
        rows.append(
            {
                "run": f"{task}: {label}",
                "task": task,
                "chance": 1 / 5,
                "test_accuracy": accuracy(
                    model, x_test[high_test], y_test[high_test] - 5
                ),
                "epochs": len(history.history["loss"]),
                "seconds": time.perf_counter() - start,
                "note": "backbone pretrained on digits 0-4"
                if label != "from scratch"
                else "random initialisation",
            }
        )
    return rows


def budgets(quick):
    if quick:
        return dict(
            epochs=3,
            patience=2,
            snapshots=2,
            snapshot_epochs=2,
            # BatchNormalization's moving variance starts at 1 and the first
            # convolution's output variance is ~1e-3: the ~90 steps of 10 epochs at
            # momentum 0.9 bring the statistics the frozen backbone runs on close
            # (after 9 steps a frozen backbone predicts one class).
            pretrain_epochs=10,
            few_shots=100,
            freeze_epochs=1,
            finetune_epochs=8,
        )
    return dict(
        epochs=40,
        patience=10,
        snapshots=5,
        snapshot_epochs=40,
        pretrain_epochs=15,
        few_shots=100,
        freeze_epochs=5,
        finetune_epochs=40,
    )


def format_table(rows):
    header = ("run", "test accuracy", "epochs", "seconds", "note")
    lines = [
        (
            r["run"],
            f"{r['test_accuracy']:.4f}",
            str(r["epochs"]),
            f"{r['seconds']:.1f}",
            r["note"],
        )
        for r in rows
    ]
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    rule = "  ".join("-" * w for w in widths)
    text = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths)),
        rule,
        *("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines),
    ]
    return "\n".join(text)


def run(args):
    """Runs every experiment, prints the table and writes plots and results.json."""
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output_dir, exist_ok=True)
    budget = budgets(args.quick)
    data = load_digits(args.seed)
    print(
        f"keras_trainplus demo: Keras {keras.__version__}, backend "
        f"{keras.backend.backend()}, {'quick' if args.quick else 'full'} run"
    )

    main_row, history, schedule, augment, mixup = run_main_model(data, args, budget)
    snapshot_rows, members = run_snapshot_ensemble(
        data, args, budget, os.path.join(args.output_dir, "snapshots")
    )
    transfer_rows = run_transfer(data, args, budget)
    rows = [main_row, *snapshot_rows, *transfer_rows]

    steps_per_epoch = -(-len(data[0][0]) // BATCH_SIZE)
    images = _demo_plots.write_all(
        args.output_dir,
        schedule=schedule,
        schedule_steps=budget["epochs"] * steps_per_epoch,
        snapshot_steps=budget["snapshot_epochs"] * steps_per_epoch,
        # SnapshotEnsemble's cycle: ceil(total steps / snapshots).
        cycle_steps=-(
            -budget["snapshot_epochs"] * steps_per_epoch // budget["snapshots"]
        ),
        samples=data[0],
        augment=augment,
        mixup=mixup,
        history=history,
        rows=rows,
        member_accuracies=members,
        member_task=DIGITS,
    )
    table = format_table(rows)
    print("\n" + table)
    results = {
        "backend": keras.backend.backend(),
        "quick": args.quick,
        "rows": rows,
        "images": images,
    }
    path = os.path.join(args.output_dir, "results.json")
    with atomic_path(path) as temporary, open(temporary, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nPlots and results.json written to {args.output_dir}:")
    for image in images:
        print(f"  {image}")
    return results
