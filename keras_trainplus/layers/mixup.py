"""Mixup and CutMix on batches of (images, labels)."""

import keras
import numpy as np

from keras_trainplus import _validation
from keras_trainplus.layers._base import BaseAugmentation
from keras_trainplus.layers._beta import symmetric_beta


@keras.saving.register_keras_serializable(package="keras_trainplus")
class Mixup(BaseAugmentation):
    """Mixup and CutMix: trains on mixtures of pairs of samples and of their labels.

    Every sample `i` of a batch is paired with sample `j = i - 1` (the batch rolled
    by one, `j = B - 1` for `i = 0`): no sample meets itself when `B >= 2`, and the
    pairs are as random as the batch order (shuffle the dataset before batching).
    One mixing weight is drawn per batch, as in both papers' reference code and
    timm's default `mode="batch"`:

    - Mixup (Zhang et al.): `lam ~ Beta(alpha, alpha)`,
      `x_i' = lam x_i + (1 - lam) x_j`.
    - CutMix (Yun et al.), used instead of Mixup with probability `switch_prob` when
      `cutmix_alpha > 0`: `lam ~ Beta(cutmix_alpha, cutmix_alpha)`; a box of
      `floor(H sqrt(1 - lam))` x `floor(W sqrt(1 - lam))` pixels centred on a
      uniformly drawn pixel, clipped to the image, is pasted from `x_j` into `x_i`,
      and `lam` is replaced by the share of the image left unpasted,
      `1 - area(clipped box) / (H W)`, so that labels match pixels exactly.

    Labels follow with the same weight: `y_i' = lam y_i + (1 - lam) y_j`, after
    label smoothing `y <- (1 - label_smoothing) y + label_smoothing / num_classes`.
    Labels of shape `(B,)` or `(B, 1)` are class indices, one-hot encoded with
    `num_classes`; labels of shape `(B, K)` are one-hot or soft class distributions
    and pass through. Sample weights, when given, are mixed with the same `lam`
    (`w_i' = lam w_i + (1 - lam) w_j`), so a sample of weight 0 (e.g. padding) only
    counts in proportion to its share of the mixture.

    The layer takes what a `tf.data` pipeline hands it, under every backend:
    `ds.map(mixup)` on `(images, labels)`, `(images, labels, sample_weight)` or
    `{"images": ..., "labels": ...}` (an optional `"sample_weight"` key), batched
    `(B, H, W, C)` images of any batch size (odd, or the last partial batch). It
    returns the same structure with float images and float label distributions.
    It mixes labels, so it belongs in the input pipeline, not in a model (which
    sees the images alone: calling it on one tensor raises a `ValueError`); it
    can also be called inside `tf.function`/`jax.jit` (with
    `layer.stateless_call` under JAX). With `training=False` the images are only
    cast and the labels one-hot encoded (no mixing, no smoothing).

    Bad labels fail instead of training silently on wrong targets:

    - structure, ranks, `num_classes` against `(B, K)` labels, and batch sizes of
      images, labels and sample weights that differ are checked when the shapes
      are known (always in eager calls and under `jax.jit`; when tracing
      otherwise), with a `ValueError`; batch sizes unknown while tracing (`None`
      in `tf.data` or `tf.function`) are checked when the graph runs, except
      under XLA;
    - class indices outside `[0, num_classes)` or not integers (`2.5`) raise a
      `ValueError` in eager calls and an `InvalidArgumentError` in `tf.data` and
      `tf.function`. Code compiled by XLA (`jax.jit`, `jit_compile=True`) cannot
      raise on values: there the one-hot rows of such labels are NaN, so that
      the loss is NaN (which `keras.callbacks.TerminateOnNaN` or
      `keras_trainplus.callbacks.EarlyStopping` stops) rather than silently
      trained on all-zero rows. `(B, K)` label values are not checked.

    References:
        Zhang, Cisse, Dauphin & Lopez-Paz, "mixup: Beyond Empirical Risk
        Minimization", ICLR 2018 (arXiv:1710.09412).
        Yun, Han, Oh, Chun, Choe & Yoo, "CutMix: Regularization Strategy to Train
        Strong Classifiers with Localizable Features", ICCV 2019
        (arXiv:1905.04899).

    Args:
        alpha: Mixup's Beta parameter, `> 0`. Defaults to `0.2`.
        cutmix_alpha: CutMix's Beta parameter, `>= 0`; `0` disables CutMix.
            Defaults to `0.0`.
        switch_prob: probability that a batch uses CutMix rather than Mixup when
            `cutmix_alpha > 0`, in `[0, 1]` (`1` gives CutMix alone). Defaults to
            `0.5`.
        num_classes: number of classes, needed for class-index labels and checked
            against `(B, K)` labels. Defaults to `None`.
        label_smoothing: in `[0, 1)`. Defaults to `0.0`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        seed: integer seed of the random draws. Defaults to `None`.
        **kwargs: base layer keyword arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> images = np.zeros((10, 32, 32, 3), "uint8")
    >>> labels = np.arange(10) % 4
    >>> mixup = Mixup(alpha=0.2, cutmix_alpha=1.0, num_classes=4, seed=0)
    >>> ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    >>> [tuple(y.shape) for _, y in ds.map(mixup)]
    [(4, 4), (4, 4), (2, 4)]
    """

    def __init__(
        self,
        alpha=0.2,
        cutmix_alpha=0.0,
        switch_prob=0.5,
        num_classes=None,
        label_smoothing=0.0,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        check = _validation.check_number
        self.alpha = check("alpha", alpha, low=0.0, low_inclusive=False)
        self.cutmix_alpha = check("cutmix_alpha", cutmix_alpha, low=0.0)
        self.switch_prob = check("switch_prob", switch_prob, low=0.0, high=1.0)
        self.num_classes = None
        if num_classes is not None:
            self.num_classes = check("num_classes", num_classes, low=1, integer=True)
        self.label_smoothing = check(
            "label_smoothing", label_smoothing, low=0.0, high=1.0, high_inclusive=False
        )
        # No weights to create: built at once, so `stateless_call` works at once.
        self.built = True

    def __call__(self, *args, **kwargs):
        # `tf.data` hands tuple elements over as separate positional arguments.
        if len(args) > 1:
            return super().__call__(args, **kwargs)
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=True):
        images, labels, weights = _unpack(inputs)
        images = self._check_images(images)
        labels = self.backend.convert_to_tensor(labels)
        encoded = self.encode_labels(labels)
        self._check_batch_sizes(images, labels, weights)
        labels = self.smooth_labels(encoded, training)
        if training:
            transformation = self.get_random_transformation(images)
            images = self.transform_images(images, transformation)
            labels = self.mix(labels, transformation["label_weight"])
            if weights is not None:
                weights = self.mix(
                    self.backend.cast(weights, self.compute_dtype),
                    transformation["label_weight"],
                )
        outputs = {"images": images, "labels": labels}
        if weights is not None:
            outputs["sample_weight"] = weights
        if isinstance(inputs, dict):
            return outputs
        return tuple(outputs.values())

    def _check_images(self, images):
        images = self.backend.convert_to_tensor(images)
        if len(images.shape) != 4:
            raise ValueError(
                "Mixup mixes the samples of a batch: it expects images of rank 4 "
                f"(batch, height, width, channels). Received: images.shape="
                f"{tuple(images.shape)}"
            )
        return self.backend.cast(images, self.compute_dtype)

    def _check_batch_sizes(self, images, labels, weights):
        sizes = {"images": images, "labels": labels}
        if weights is not None:
            sizes["sample_weight"] = self.backend.convert_to_tensor(weights)
        static = {name: (t.shape[0] if t.shape else 1) for name, t in sizes.items()}
        message = (
            "Mixup needs one label (and sample weight) per image: the batch sizes "
            "differ. Received: "
        )
        if None not in static.values():
            if len(set(static.values())) > 1:
                shapes = ", ".join(
                    f"{k}.shape={tuple(v.shape)}" for k, v in sizes.items()
                )
                raise ValueError(message + shapes)
        elif self.backend.name == "tensorflow":
            import tensorflow as tf

            first = tf.shape(images)[0]
            for name, tensor in sizes.items():
                tf.debugging.assert_equal(
                    tf.shape(tensor)[0], first, message=f"{message}{name} vs images"
                )

    def _check_class_indices(self, labels, valid):
        """Raises on invalid class indices where the values can be checked."""
        message = (
            f"Mixup got class-index labels outside [0, {self.num_classes}) or not "
            f"integers (num_classes={self.num_classes})"
        )
        values = _known_values(self.backend, labels)
        if values is not None:
            bad = np.asarray(values)[~np.asarray(_known_values(self.backend, valid))]
            if bad.size:
                raise ValueError(f"{message}. Received: invalid labels {bad.tolist()}")
        elif self.backend.name == "tensorflow":
            import tensorflow as tf

            # Runs in `tf.data` and `tf.function`; XLA drops assertions.
            tf.debugging.Assert(
                tf.reduce_all(valid), [message + ". Received: labels=", labels]
            )

    def encode_labels(self, labels):
        """Returns `(B, K)` float labels: one-hot for class indices, else as given.

        Class indices outside `[0, num_classes)` or not integers raise an error
        where the values can be checked (eager calls, `tf.data`, `tf.function`);
        in code compiled by XLA their rows are NaN.
        """
        labels = self.backend.convert_to_tensor(labels)
        shape = tuple(labels.shape)
        if len(shape) not in (1, 2):
            raise ValueError(
                "Mixup expects labels of shape (batch,) or (batch, 1) (class indices) "
                f"or (batch, num_classes). Received: labels.shape={shape}"
            )
        if len(shape) == 2 and shape[1] != 1:
            known = None not in (shape[1], self.num_classes)
            if known and shape[1] != self.num_classes:
                raise ValueError(
                    f"Mixup got labels of shape {shape}, which does not match "
                    f"num_classes={self.num_classes}."
                )
            return self.backend.cast(labels, self.compute_dtype)
        if self.num_classes is None:
            raise ValueError(
                f"Mixup got class-index labels of shape {shape}: pass `num_classes` "
                "to one-hot encode them. Received: num_classes=None"
            )
        np_ = self.backend.numpy
        labels = np_.reshape(labels, (-1,))
        valid = (labels >= 0) & (labels < self.num_classes)
        if "float" in keras.backend.standardize_dtype(labels.dtype):
            valid = valid & (np_.floor(labels) == labels)
        self._check_class_indices(labels, valid)
        onehot = self.backend.nn.one_hot(
            self.backend.cast(labels, "int32"),
            self.num_classes,
            dtype=self.compute_dtype,
        )
        # Where no error can be raised (XLA), an invalid label makes its row NaN, and
        # so the loss, rather than a silent all-zero row.
        return np_.where(valid[:, None], onehot, np.nan)

    def smooth_labels(self, labels, training=True):
        if not training or self.label_smoothing == 0.0:
            return labels
        classes = self.backend.core.shape(labels)[-1]
        smoothing = self.label_smoothing
        return labels * (1.0 - smoothing) + smoothing / self.backend.cast(
            classes, self.compute_dtype
        )

    def get_random_transformation(self, images):
        """Draws the batch's mixing weight and, with CutMix, its box.

        Returns a dict of scalars: `lam` (Mixup's weight) and `label_weight` (the
        labels' weight); with `cutmix_alpha > 0` also `use_cutmix` (bool) and the
        box `top`, `left`, `box_height`, `box_width` (int32, before clipping).
        """
        if self.cutmix_alpha == 0.0:
            lam = symmetric_beta(self.backend, self._seed(), [self.alpha])[0]
            return {"lam": lam, "label_weight": lam}
        np_, random, seed = self.backend.numpy, self.backend.random, self._seed()
        draws = symmetric_beta(self.backend, seed, [self.alpha, self.cutmix_alpha])
        lam, cut_lam = draws[0], draws[1]
        height, width = self._spatial_size(images)
        size = self.backend.cast(np_.stack([height, width]), "float32")
        box = self.backend.cast(np_.floor(np_.sqrt(1.0 - cut_lam) * size), "int32")
        centre = random.uniform((2,), dtype="float32", seed=seed)
        corner = self.backend.cast(centre * size, "int32") - box // 2
        transformation = {
            "lam": lam,
            "use_cutmix": random.uniform((), seed=seed) < self.switch_prob,
            "top": corner[0],
            "left": corner[1],
            "box_height": box[0],
            "box_width": box[1],
        }
        transformation["label_weight"] = np_.where(
            transformation["use_cutmix"],
            1.0 - self._box_area(transformation, height, width),
            lam,
        )
        return transformation

    def _spatial_size(self, images):
        shape = self.backend.core.shape(images)
        if self.data_format == "channels_last":
            return shape[1], shape[2]
        return shape[2], shape[3]

    def _box_mask(self, transformation, height, width):
        """Boolean (H, W) mask, true inside the box (pixels taken from the partner)."""
        np_ = self.backend.numpy
        rows = np_.arange(height, dtype="int32")
        cols = np_.arange(width, dtype="int32")
        top, left = transformation["top"], transformation["left"]
        inside_rows = (rows >= top) & (rows < top + transformation["box_height"])
        inside_cols = (cols >= left) & (cols < left + transformation["box_width"])
        return inside_rows[:, None] & inside_cols[None, :]

    def _box_area(self, transformation, height, width):
        """Share of the image covered by the box once clipped to it."""
        np_ = self.backend.numpy
        top, left = transformation["top"], transformation["left"]
        rows = np_.clip(top + transformation["box_height"], 0, height) - np_.clip(
            top, 0, height
        )
        cols = np_.clip(left + transformation["box_width"], 0, width) - np_.clip(
            left, 0, width
        )
        area = self.backend.cast(rows * cols, "float32")
        return area / self.backend.cast(height * width, "float32")

    def transform_images(self, images, transformation):
        """Blends each image with its partner (Mixup) or pastes the partner's box."""
        partners = self.backend.numpy.roll(images, 1, axis=0)
        lam = self.backend.cast(transformation["lam"], self.compute_dtype)

        def mixup():
            # Written as in the paper: 7 memory passes per pixel without fusion,
            # against 8 for `x_j + lam (x_i - x_j)`.
            return lam * images + (1.0 - lam) * partners

        if "use_cutmix" not in transformation:
            return mixup()

        def cutmix():
            np_ = self.backend.numpy
            shape = self.backend.core.shape(images)
            height, width = self._spatial_size(images)
            mask = self._box_mask(transformation, height, width)
            # One mask entry per value of an image, broadcast over the batch axis
            # only: TensorFlow's CPU select is many times slower otherwise.
            if self.data_format == "channels_last":
                mask = np_.repeat(mask[:, :, None], shape[3], axis=2)
            else:
                mask = np_.repeat(mask[None], shape[1], axis=0)
            flat = (shape[0], -1)
            mixed = np_.where(
                np_.reshape(mask, (1, -1)),
                np_.reshape(partners, flat),
                np_.reshape(images, flat),
            )
            return np_.reshape(mixed, shape)

        # Only the branch the batch uses is computed.
        return self.backend.core.cond(transformation["use_cutmix"], cutmix, mixup)

    def mix(self, values, weight):
        """`weight * values[i] + (1 - weight) * values[i - 1]` along the batch axis."""
        weight = self.backend.cast(weight, self.compute_dtype)
        partners = self.backend.numpy.roll(values, 1, axis=0)
        return weight * values + (1.0 - weight) * partners

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, dict) and all(
            d is None or isinstance(d, int) for d in input_shape
        ):
            raise _structure_error(f"one tensor of shape {tuple(input_shape)}")
        images, labels, weights = _unpack(input_shape)
        shapes = {"images": images, "labels": labels}
        if weights is not None:
            shapes["sample_weight"] = weights
        labels = tuple(shapes["labels"])
        if len(labels) == 1 or labels[-1] == 1:
            labels = (labels[0], self.num_classes)
        shapes["labels"] = labels
        return shapes if isinstance(input_shape, dict) else tuple(shapes.values())

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "cutmix_alpha": self.cutmix_alpha,
                "switch_prob": self.switch_prob,
                "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing,
            }
        )
        return config


def _unpack(inputs):
    """`(images, labels, sample_weight or None)` from the structures Mixup takes."""
    if isinstance(inputs, dict):
        unknown = set(inputs) - {"images", "labels", "sample_weight"}
        if "images" not in inputs or "labels" not in inputs or unknown:
            raise ValueError(
                "Mixup expects a dict with keys 'images', 'labels' and optionally "
                f"'sample_weight'. Received keys: {sorted(inputs)}"
            )
        return inputs["images"], inputs["labels"], inputs.get("sample_weight")
    if isinstance(inputs, (tuple, list)) and len(inputs) in (2, 3):
        return inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else None
    count = len(keras.tree.flatten(inputs))
    raise _structure_error(f"{type(inputs).__name__} of {count} tensors")


def _structure_error(received):
    return ValueError(
        "Mixup expects (images, labels), (images, labels, sample_weight) or "
        "{'images': ..., 'labels': ...}: it mixes the labels with the images, so it "
        "belongs in the input pipeline (`dataset.map(mixup)`), not in a model, "
        f"which sees the images alone. Received: {received}"
    )


def _known_values(backend, tensor):
    """`tensor`'s values as NumPy when known now (eager), `None` when traced."""
    if backend.name == "tensorflow":
        import tensorflow as tf

        return tensor.numpy() if tf.executing_eagerly() else None
    if backend.name == "jax":
        import jax

        return None if isinstance(tensor, jax.core.Tracer) else np.asarray(tensor)
    return backend.core.convert_to_numpy(tensor)
