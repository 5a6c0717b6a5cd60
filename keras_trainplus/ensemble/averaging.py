"""Averaging ensemble: one Keras model whose prediction pools its members'."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus._validation import check_choice
from keras_trainplus._validation import check_number

METHODS = ("probabilities", "logits", "vote")


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class AveragingEnsemble(keras.Model):
    """A model that averages the predictions of several member models.

    Model ensembles (Stanford CS231n; Snapshot Ensembles, Huang et al. 2017,
    arXiv:1704.00109) train several models, or keep several snapshots of one run, and
    pool their predictions at test time. With member outputs `y_i` and weights `w_i`
    normalized to sum to 1 (equal weights `1/n` by default) the ensemble returns

    - `method="probabilities"`: `sum_i w_i y_i`, for members that output
      probabilities (softmax/sigmoid); the result is a probability vector;
    - `method="logits"`: `sum_i w_i z_i`, for members that output logits `z_i`; the
      result stays a logit vector (the normalized geometric mean of the members'
      probabilities), so losses built with `from_logits=True` still apply;
    - `method="vote"`: `sum_i w_i onehot(argmax y_i)`, the (weighted) share of
      members voting for each class. `argmax` of that share is the majority class.
      Ties are not broken in the output: tied classes get equal shares, and
      `argmax` (as used by Keras accuracy metrics and `keras.ops.argmax`) then picks
      the lowest tied class index, the convention of scikit-learn's hard
      `VotingClassifier`. Voting needs a class axis of size at least 2.

    The members may differ in architecture but must take one input and return one
    output of the same shapes (the batch axis aside). The ensemble is a regular
    `keras.Model`: it works with `compile`/`evaluate`/`predict` (under
    `jit_compile=True` too) and saves and loads with `model.save()` /
    `keras.saving.load_model()`. `AveragingEnsemble.from_files` builds one from
    saved `.keras` files such as the snapshots written by `SnapshotEnsemble`.

    Args:
        models: a non-empty list of built Keras models (Functional or Sequential)
            with one input and one output. Defaults to none (required).
        weights: `None` or one non-negative number per member, not all zero;
            normalized to sum to 1. Defaults to `None` (equal weights).
        method: `"probabilities"`, `"logits"` or `"vote"`. Defaults to
            `"probabilities"`.
        **kwargs: base `keras.Model` arguments (`name`, `dtype`...). Defaults to
            none.

    Example:

    >>> import numpy as np
    >>> def member(seed):
    ...     return keras.Sequential([
    ...         keras.Input((4,)),
    ...         keras.layers.Dense(3, activation="softmax",
    ...         kernel_initializer=keras.initializers.GlorotUniform(seed)),
    ...     ])
    >>> ensemble = AveragingEnsemble([member(0), member(1)])
    >>> ensemble.predict(np.ones((2, 4)), verbose=0).shape
    (2, 3)
    """

    def __init__(self, models, weights=None, method="probabilities", **kwargs):
        super().__init__(**kwargs)
        models = list(models) if models is not None else []
        if not models:
            raise ValueError(
                "Argument `models` must be a non-empty list of Keras models. "
                f"Received: models={models!r}"
            )
        self.method = check_choice("method", method, METHODS)
        self._member_input_shape, self._member_output_shape = _common_shapes(models)
        if method == "vote" and (self._member_output_shape[-1] or 0) < 2:
            raise ValueError(
                "`method='vote'` needs member outputs with a class axis of size >= 2. "
                f"Received: output shape {self._member_output_shape}"
            )
        self.member_weights = _normalized_weights(weights, len(models))
        self.members = models
        self.built = True

    @classmethod
    def from_files(cls, paths, weights=None, method="probabilities", **kwargs):
        """Builds an ensemble from saved `.keras` model files (loaded uncompiled).

        Args:
            paths: a non-empty list of paths written by `model.save()`. Defaults
                to none (required).
            weights: as in the constructor. Defaults to `None`.
            method: as in the constructor. Defaults to `"probabilities"`.
            **kwargs: base `keras.Model` arguments. Defaults to none.

        Returns:
            An `AveragingEnsemble` of the loaded models, in the order of `paths`.
        """
        paths = list(paths) if paths is not None else []
        if not paths:
            raise ValueError(
                "Argument `paths` must be a non-empty list of saved model files. "
                f"Received: paths={paths!r}"
            )
        models = [keras.saving.load_model(path, compile=False) for path in paths]
        return cls(models, weights=weights, method=method, **kwargs)

    def call(self, inputs, training=False):
        outputs = [member(inputs, training=training) for member in self.members]
        if self.method == "vote":
            classes = self._member_output_shape[-1]
            outputs = [
                ops.one_hot(ops.argmax(y, axis=-1), classes, dtype=y.dtype)
                for y in outputs
            ]
        if self.member_weights is None:
            return ops.mean(ops.stack(outputs, axis=0), axis=0)
        total = outputs[0] * self.member_weights[0]
        for weight, y in zip(self.member_weights[1:], outputs[1:]):
            total = total + y * weight
        return total

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(self._member_output_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "models": [
                    keras.saving.serialize_keras_object(m) for m in self.members
                ],
                "weights": (
                    None if self.member_weights is None else list(self.member_weights)
                ),
                "method": self.method,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["models"] = [
            keras.saving.deserialize_keras_object(m, custom_objects=custom_objects)
            for m in config["models"]
        ]
        return cls(**config)


def _normalized_weights(weights, count):
    if weights is None:
        return None
    weights = list(weights)
    if len(weights) != count:
        raise ValueError(
            f"Argument `weights` must have one entry per member ({count}). "
            f"Received: weights={weights!r}"
        )
    weights = [check_number("weights", w, low=0.0) for w in weights]
    total = sum(weights)
    if total <= 0.0:
        raise ValueError(
            "Argument `weights` must have a positive sum. "
            f"Received: weights={weights!r}"
        )
    return tuple(w / total for w in weights)


def _io_shapes(index, model):
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Every member must be a keras.Model. Received at index {index}: {model!r}"
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            f"Member {index} ({model.name}) has no known input/output shape: members "
            "must be built Functional or Sequential models."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"Member {index} ({model.name}) has {len(inputs)} inputs and "
            f"{len(outputs)} outputs; members must have exactly one of each."
        )
    return tuple(inputs[0].shape[1:]), tuple(outputs[0].shape[1:])


def _common_shapes(models):
    shapes = [_io_shapes(i, m) for i, m in enumerate(models)]
    for index, (model, shape) in enumerate(zip(models, shapes)):
        if shape != shapes[0]:
            raise ValueError(
                "All members must agree on input and output shapes. Member 0 "
                f"({models[0].name}) has input {shapes[0][0]} and output "
                f"{shapes[0][1]}; member {index} ({model.name}) has input "
                f"{shape[0]} and output {shape[1]}."
            )
    return shapes[0]
