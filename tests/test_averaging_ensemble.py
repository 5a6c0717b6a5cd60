"""AveragingEnsemble: equals the pooled outputs of its members computed separately."""

import keras
import numpy as np
import pytest

from keras_trainplus.ensemble import AveragingEnsemble
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.config import assert_config_roundtrip


def mlp(seed, hidden, activation="softmax", inputs=6, classes=4):
    init = keras.initializers.GlorotUniform(seed)
    layers = [keras.Input((inputs,))]
    layers += [
        keras.layers.Dense(h, activation="tanh", kernel_initializer=init)
        for h in hidden
    ]
    layers.append(
        keras.layers.Dense(classes, activation=activation, kernel_initializer=init)
    )
    return keras.Sequential(layers)


def functional(seed):
    inputs = keras.Input((6,))
    a = keras.layers.Dense(5, activation="relu")(inputs)
    b = keras.layers.Dense(5, activation="sigmoid")(inputs)
    merged = keras.layers.Concatenate()([a, b])
    outputs = keras.layers.Dense(4, activation="softmax")(merged)
    keras.utils.set_random_seed(seed)
    return keras.Model(inputs, outputs)


def member_outputs(members, x):
    return [m.predict(x, verbose=0).astype(np.float64) for m in members]


@pytest.fixture
def data(rng):
    x = rng.normal(size=(20, 6)).astype("float32")
    y = rng.integers(0, 4, size=20)
    return x, y


@pytest.mark.smoke
@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
@pytest.mark.parametrize("method", ["probabilities", "logits"])
def test_output_is_mean_of_members(data, mode, compile_kwargs, method):
    x, y = data
    activation = "softmax" if method == "probabilities" else None
    members = [
        mlp(0, [8], activation),
        mlp(1, [5, 7], activation),
        mlp(2, [], activation),
    ]
    ensemble = AveragingEnsemble(members, method=method)
    expected = np.mean(member_outputs(members, x), axis=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=method == "logits")
    ensemble.compile(
        loss=loss, metrics=["sparse_categorical_accuracy"], **compile_kwargs
    )
    # The deepest member (fan-ins 6, 5, 7) evaluated apart or inside the ensemble,
    # then a mean of 3.
    ulps = tolerance.network_ulps(6, 5, 7) + 3
    predictions = ensemble.predict(x, verbose=0)
    tolerance.assert_close(predictions, expected, ulps)

    # evaluate: the loss and accuracy of the pooled prediction, computed in NumPy.
    if method == "logits":
        z = expected - expected.max(axis=1, keepdims=True)
        probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    else:
        probabilities = expected
    want_loss = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    want_accuracy = np.mean(np.argmax(expected, axis=1) == y)
    got_loss, got_accuracy = ensemble.evaluate(x, y, batch_size=20, verbose=0)
    # -log p moves by the probabilities' error divided by p.
    true_class = probabilities[np.arange(len(y)), y]
    scale = max(1.0, np.abs(expected).max()) / true_class.min()
    tolerance.assert_close(got_loss, want_loss, ulps + len(y), scale=scale)
    np.testing.assert_allclose(got_accuracy, want_accuracy)  # a count of 20


def test_weighted_mean_and_mixed_architectures(data):
    x, _ = data
    members = [mlp(0, [8]), functional(3)]
    ensemble = AveragingEnsemble(members, weights=[3, 1])
    outputs = member_outputs(members, x)
    expected = 0.75 * outputs[0] + 0.25 * outputs[1]
    ulps = tolerance.network_ulps(6, 10) + 3  # the functional member, weighted sum
    tolerance.assert_close(ensemble(x), expected, ulps)


def fixed_vote_member(kernel):
    """A linear model `y = x K` with a hand-set kernel (its vote is argmax of x K)."""
    model = keras.Sequential(
        [keras.Input((len(kernel),)), keras.layers.Dense(3, use_bias=False)]
    )
    model.set_weights([np.asarray(kernel, "float32")])
    return model


def test_vote_majority_and_ties():
    eye = np.eye(3)
    to_class_2 = eye[:, [2, 1, 0]]  # x = e_0 votes class 2 with this member
    members = [
        fixed_vote_member(eye),
        fixed_vote_member(to_class_2),
        fixed_vote_member(eye),
    ]
    x = np.eye(
        3, dtype="float32"
    )  # member votes: x=e0 -> (0, 2, 0); e1 -> (1,1,1); e2 -> (2, 0, 2)
    votes = keras.ops.convert_to_numpy(AveragingEnsemble(members, method="vote")(x))
    # Shares of 3 one-hot votes: a sum and a division.
    tolerance.assert_close(votes, [[2 / 3, 0, 1 / 3], [0, 1, 0], [1 / 3, 0, 2 / 3]], 2)

    # Two members disagreeing on e_0 (class 0 vs 2) and e_2 (class 2 vs 0): equal
    # shares, and argmax (accuracy metrics) takes the lowest class index.
    tie = AveragingEnsemble(members[:2], method="vote")
    shares = keras.ops.convert_to_numpy(tie(x))
    # Exact on any CPU: halves of one-hot sums round nowhere.
    np.testing.assert_array_equal(shares, [[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]])
    np.testing.assert_array_equal(np.argmax(shares, axis=1), [0, 1, 0])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(keras.ops.argmax(tie(x), axis=-1)), [0, 1, 0]
    )
    tie.compile(
        loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"]
    )
    _, accuracy = tie.evaluate(x, np.array([0, 1, 0]), verbose=0)
    assert accuracy == 1.0

    # Weights break the tie.
    weighted = AveragingEnsemble(members[:2], weights=[1, 2], method="vote")
    tolerance.assert_close(weighted(x)[0], [1 / 3, 0, 2 / 3], 2)


@pytest.mark.smoke
def test_save_load_roundtrip(tmp_path, data):
    x, _ = data
    ensemble = AveragingEnsemble(
        [mlp(0, [8]), functional(1)], weights=[1, 2], method="logits"
    )
    expected = keras.ops.convert_to_numpy(ensemble(x))
    path = str(tmp_path / "ensemble.keras")
    ensemble.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AveragingEnsemble)
    assert loaded.method == "logits"
    ulps = tolerance.network_ulps(6, 10) + 3  # the same weights, maybe other kernels
    tolerance.assert_close(loaded.predict(x, verbose=0), expected, ulps)


def test_config_roundtrip():
    assert_config_roundtrip(
        AveragingEnsemble([mlp(0, [3]), mlp(1, [])], weights=[1, 1])
    )


def test_from_files(tmp_path, data):
    x, _ = data
    members = [mlp(0, [8]), mlp(1, [4])]
    paths = []
    for i, member in enumerate(members):
        paths.append(str(tmp_path / f"m{i}.keras"))
        member.save(paths[-1])
    ensemble = AveragingEnsemble.from_files(paths, weights=[1, 3])
    outputs = member_outputs(members, x)
    tolerance.assert_close(
        ensemble.predict(x, verbose=0),
        0.25 * outputs[0] + 0.75 * outputs[1],
        tolerance.network_ulps(6, 8) + 3,
    )
    with pytest.raises(ValueError, match=r"Argument `paths` must be a non-empty list"):
        AveragingEnsemble.from_files([])


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(4)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda: dict(models=[]),
            r"Argument `models` must be a non-empty list of Keras models. Received: models=\[\]",
        ),
        (
            lambda: dict(models=[mlp(0, [3]), mlp(1, [3], inputs=5)]),
            r"agree on input and output shapes. Member 0 .* input \(6,\) .* member 1 .* input \(5,\)",
        ),
        (
            lambda: dict(models=[mlp(0, [3]), mlp(1, [3], classes=3)]),
            r"agree on input and output shapes.*output \(4,\).*output \(3,\)",
        ),
        (
            lambda: dict(models=[mlp(0, [3])], method="median"),
            r"Argument `method` must be one of 'probabilities', 'logits', 'vote'. Received: method='median'",
        ),
        (
            lambda: dict(models=[mlp(0, [3])] * 2, weights=[1]),
            r"`weights` must have one entry per member \(2\)",
        ),
        (
            lambda: dict(models=[mlp(0, [3])] * 2, weights=[1, -1]),
            r"Argument `weights` must be >= 0.0. Received: weights=-1",
        ),
        (
            lambda: dict(models=[mlp(0, [3])] * 2, weights=[0, 0]),
            r"`weights` must have a positive sum",
        ),
        (
            lambda: dict(models=[mlp(0, [3], classes=1)], method="vote"),
            r"class axis of size >= 2",
        ),
        (lambda: dict(models=[Subclassed()]), r"no known input/output shape"),
        (lambda: dict(models=["model.keras"]), r"Every member must be a keras.Model"),
    ],
)
def test_invalid_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        AveragingEnsemble(**make())
