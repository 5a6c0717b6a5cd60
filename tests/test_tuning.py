"""keras_trainplus.tuning: sampled ranges, built objects, tiny searches end to end.

Distributions are checked empirically: each helper registers its hyperparameters in
a `keras_tuner.HyperParameters`, values are drawn the way KerasTuner's random
search draws them (`HyperParameter.random_sample` on each active parameter), and
the draws are compared with the documented law (fractions per decade for
log-uniform ranges, Kolmogorov-Smirnov against scipy's uniform law).
"""

import math
import os
import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest
from scipy import stats

import keras_trainplus as ktp
from keras_trainplus import tuning
from keras_trainplus.tuning import _tuners
from tests.helpers import schedules as schedule_helpers
from tests.helpers import tolerance

DRAWS = 3000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _space(helper, **kwargs):
    hp = keras_tuner.HyperParameters()
    helper(hp, **kwargs)
    return hp


def _random_values(space, seed):
    """One random configuration, drawn as `keras_tuner`'s random search does."""
    hps = keras_tuner.HyperParameters()
    for index, parameter in enumerate(space.space):
        hps.merge([parameter])
        if hps.is_active(parameter):
            hps.values[parameter.name] = parameter.random_sample(seed * 1000 + index)
    return hps.values


def _draws(helper, n=DRAWS, **kwargs):
    """`n` random configurations of `helper`'s space, as a list of value dicts."""
    space = _space(helper, **kwargs)
    return space, [_random_values(space, seed) for seed in range(n)]


def _with_values(helper, values, **kwargs):
    """Calls `helper` on a `HyperParameters` holding `values` (a sampled trial)."""
    space = _space(helper, **kwargs)
    hp = space.copy()
    hp.values = dict(values)
    return hp, helper(hp, **kwargs)


def _assert_log_uniform(samples, low, high):
    samples = np.asarray(samples, dtype=np.float64)
    assert samples.min() >= low and samples.max() <= high
    logs = np.log10(samples)
    lo, hi = math.log10(low), math.log10(high)
    assert stats.kstest(logs, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    # Equal mass per decade (per third of the range when it spans a single
    # decade): a linear-uniform draw would put ~90% in the top decade.
    bins = max(3, round(hi - lo))
    counts = np.histogram(logs, bins=np.linspace(lo, hi, bins + 1))[0]
    p = 1 / bins
    sigma = math.sqrt(len(samples) * p * (1 - p))
    np.testing.assert_array_less(np.abs(counts - len(samples) * p), 5 * sigma)


def _assert_uniform(samples, low, high):
    samples = np.asarray(samples, dtype=np.float64)
    assert samples.min() >= low and samples.max() <= high
    assert stats.kstest(samples, stats.uniform(low, high - low).cdf).pvalue > 1e-3


def _assert_frequencies(samples, categories):
    counts = np.array([sum(s == c for s in samples) for c in categories])
    p = 1 / len(categories)
    sigma = math.sqrt(len(samples) * p * (1 - p))
    np.testing.assert_array_less(np.abs(counts - len(samples) * p), 5 * sigma)


# ----------------------------------------------------------------------------------
# Import contract.


def test_keras_trainplus_does_not_import_keras_tuner_and_tuning_names_the_extra():
    code = (
        "import sys, keras_trainplus\n"
        "assert 'keras_tuner' not in sys.modules, 'keras_tuner imported'\n"
        "sys.modules['keras_tuner'] = None\n"
        "try:\n"
        "    import keras_trainplus.tuning\n"
        "except ImportError as error:\n"
        "    print('MESSAGE', error)\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'pip install "keras_trainplus[tune]"' in done.stdout


# ----------------------------------------------------------------------------------
# Sampled ranges.


def test_optimizer_samples_documented_ranges():
    space, draws = _draws(tuning.optimizer)
    _assert_frequencies([d["optimizer"] for d in draws], tuning._optimizer.FAMILIES)
    _assert_log_uniform([d["learning_rate"] for d in draws], 1e-4, 1e-1)
    _assert_log_uniform([d["weight_decay"] for d in draws], 1e-6, 1e-2)
    nesterov = [d for d in draws if d["optimizer"] == "nesterov"]
    assert all(("momentum" in d) == (d["optimizer"] == "nesterov") for d in draws)
    _assert_uniform([d["momentum"] for d in nesterov], 0.8, 0.99)
    wrappable = [d for d in draws if d["optimizer"] != "ranger"]
    assert all(("lookahead" in d) == (d["optimizer"] != "ranger") for d in draws)
    _assert_frequencies([d["lookahead"] for d in wrappable], (False, True))


def test_optimizer_bounds_are_overridable():
    _, draws = _draws(
        tuning.optimizer,
        families=("radam", "adam"),
        learning_rate=(1e-3, 1e-2),
        weight_decay=0.0,
        lookahead=False,
    )
    _assert_frequencies([d["optimizer"] for d in draws], ("radam", "adam"))
    _assert_log_uniform([d["learning_rate"] for d in draws], 1e-3, 1e-2)
    assert {d["weight_decay"] for d in draws} == {0.0}
    assert {d["lookahead"] for d in draws} == {False}


def test_learning_rate_schedule_samples_documented_ranges():
    _, draws = _draws(tuning.learning_rate_schedule, total_steps=100)
    _assert_frequencies([d["schedule"] for d in draws], tuning._schedule.KINDS)
    _assert_log_uniform([d["learning_rate"] for d in draws], 1e-4, 1e-1)
    cosine = [d for d in draws if d["schedule"] == "cosine"]
    assert all(("warmup_fraction" in d) == (d["schedule"] == "cosine") for d in draws)
    _assert_uniform([d["warmup_fraction"] for d in cosine], 0.0, 0.1)
    assert {d["step_decay_rate"] for d in draws if d["schedule"] == "step"} == {0.1}
    assert {d["pct_start"] for d in draws if d["schedule"] == "one_cycle"} == {0.25}


@pytest.mark.smoke
def test_regularization_helpers_sample_documented_ranges():
    _, draws = _draws(tuning.dropout_rate)
    _assert_uniform([d["dropout_rate"] for d in draws], 0.0, 0.5)
    _, draws = _draws(tuning.mixup_alpha)
    _assert_log_uniform([d["mixup_alpha"] for d in draws], 0.1, 1.0)
    _, draws = _draws(tuning.augmentation_strength)
    _assert_uniform([d["augmentation_strength"] for d in draws], 0.0, 1.0)
    _, draws = _draws(tuning.dropout_rate, rate=(0.1, 0.3), name="dropout_1")
    _assert_uniform([d["dropout_1"] for d in draws], 0.1, 0.3)


def test_grid_size_gives_evenly_spaced_grids_with_both_ends():
    hp = keras_tuner.HyperParameters()
    tuning.optimizer(hp, families="adam", lookahead=False, grid_size=4)
    tuning.dropout_rate(hp, grid_size=3)
    tuning.mixup_alpha(hp, alpha=(0.1, 0.4), grid_size=3)
    choice = keras_tuner.engine.hyperparameters.Choice
    grids = {p.name: list(p.values) for p in hp.space if isinstance(p, choice)}
    # Grid points are rounded to 6 significant digits.
    close = dict(rtol=1e-5, atol=0)
    np.testing.assert_allclose(grids["learning_rate"], [1e-4, 1e-3, 1e-2, 1e-1])
    np.testing.assert_allclose(
        grids["weight_decay"], 10 ** np.linspace(-6, -2, 4), **close
    )
    np.testing.assert_allclose(grids["dropout_rate"], [0.0, 0.25, 0.5])
    np.testing.assert_allclose(grids["mixup_alpha"], [0.1, 0.2, 0.4], **close)


def test_fixed_numbers_are_recorded_not_searched():
    hp = keras_tuner.HyperParameters()
    rate = tuning.dropout_rate(hp, rate=0.3)
    assert rate == 0.3
    (parameter,) = hp.space
    assert isinstance(parameter, keras_tuner.engine.hyperparameters.Fixed)


# ----------------------------------------------------------------------------------
# Built objects.


def _minimises(optimizer, steps=6):
    """A few steps on f(x) = ||x - 1||^2 from x = 0 must reduce f."""
    x = keras.Variable(np.zeros(4, dtype="float32"), trainable=True)
    for _ in range(steps):
        grad = 2.0 * (keras.ops.convert_to_numpy(x) - 1.0)
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad), x)])
    return np.sum((keras.ops.convert_to_numpy(x) - 1.0) ** 2) < 4.0


@pytest.mark.smoke
@pytest.mark.parametrize(
    "family, lookahead, expected",
    [
        ("adam", False, keras.optimizers.Adam),
        ("nesterov", False, "Nesterov"),
        ("radam", False, "RAdam"),
        ("ranger", None, "Ranger"),
        ("adam", True, "LookAhead"),
        ("nesterov", True, "LookAhead"),
        ("radam", True, "LookAhead"),
    ],
)
def test_optimizer_builds_the_sampled_family(family, lookahead, expected):
    values = {"optimizer": family, "learning_rate": 0.02, "weight_decay": 1e-4}
    if family == "nesterov":
        values["momentum"] = 0.85
    if lookahead is not None:
        values["lookahead"] = lookahead
    _, built = _with_values(tuning.optimizer, values)
    if isinstance(expected, str):
        expected = getattr(ktp.optimizers, expected)
    # isinstance: under PyTorch, Keras's Adam is a backend subclass.
    assert isinstance(built, expected)
    inner = built.optimizer if lookahead else built
    if family == "adam":
        assert isinstance(inner, keras.optimizers.Adam)
    else:
        assert type(inner).__name__.lower() == family
    np.testing.assert_allclose(float(inner.learning_rate), 0.02, rtol=1e-6)
    np.testing.assert_allclose(inner.weight_decay, 1e-4)
    if family == "nesterov":
        np.testing.assert_allclose(inner.momentum, 0.85)
    if lookahead:
        assert (built.sync_period, built.slow_step_size) == (5, 0.5)
    assert _minimises(built)


@pytest.mark.smoke
def test_optimizer_takes_a_schedule_and_zero_weight_decay():
    schedule = ktp.schedules.CosineDecay(0.1, decay_steps=10)
    hp = keras_tuner.HyperParameters()
    built = tuning.optimizer(
        hp, families="adam", learning_rate=schedule, weight_decay=0, lookahead=False
    )
    np.testing.assert_allclose(float(built.learning_rate), 0.1, rtol=1e-6)
    assert built.weight_decay is None
    assert "learning_rate" not in hp.values
    assert _minimises(built)


def test_sampled_mixup_alpha_builds_a_working_mixup_layer():
    space, draws = _draws(tuning.mixup_alpha, n=5)
    images = np.arange(4 * 2 * 2 * 1, dtype="float32").reshape(4, 2, 2, 1)
    labels = np.array([0, 1, 2, 1])
    for values in draws:
        _, alpha = _with_values(tuning.mixup_alpha, values)
        assert alpha == values["mixup_alpha"]
        mixup = ktp.layers.Mixup(alpha=alpha, num_classes=3, seed=0)
        assert mixup.alpha == alpha
        mixed, soft = (np.asarray(t) for t in mixup((images, labels), training=True))
        # Sample i is mixed with sample i - 1, whose label differs here, so the
        # weight of sample i's own class is lam.
        lam = soft[np.arange(4), labels]
        # A float32 blend rounds 5 times (lam, 1 - lam, two products, the sum) at the
        # scale of what it blends (labels: 1, images: their largest value).
        tolerance.assert_close(soft.sum(axis=1), 1.0, 5)
        tolerance.assert_close(lam, lam[0], 5)
        expected = lam[0] * images + (1 - lam[0]) * np.roll(images, 1, axis=0)
        tolerance.assert_close(mixed, expected, 5, scale=images)


def _step_reference(peak, total, rate, fractions, t):
    boundaries = sorted({max(1, round(f * total)) for f in fractions})
    return peak * rate ** sum(t >= b for b in boundaries)


def _cosine_reference(peak, total, warmup, t):
    if t < warmup:
        return peak * t / warmup
    decay = total - warmup
    return 0.5 * peak * (1 + math.cos(math.pi * min(t - warmup, decay) / decay))


def _one_cycle_reference(peak, total, pct, t):
    # PyTorch's OneCycleLR (two phases, cosine annealing, div 25, final div 1e4).
    low = peak / 25
    end = low / 1e4
    e1, e2 = pct * total - 1, total - 1

    def anneal(a, b, x):
        return b + (a - b) * (1 + math.cos(math.pi * x)) / 2

    if t <= e1:
        return anneal(low, peak, t / e1)
    return anneal(peak, end, min((t - e1) / (e2 - e1), 1.0))


@pytest.mark.smoke
@pytest.mark.parametrize("kind", ["step", "cosine", "one_cycle"])
def test_learning_rate_schedule_builds_the_sampled_schedule(kind):
    total = 200
    values = {"schedule": kind, "learning_rate": 0.05}
    if kind == "cosine":
        values["warmup_fraction"] = 0.1
    if kind == "step":
        values["step_decay_rate"] = 0.1
    if kind == "one_cycle":
        values["pct_start"] = 0.25
    _, schedule = _with_values(tuning.learning_rate_schedule, values, total_steps=total)
    steps = [0, 1, 10, 19, 20, 21, 50, 99, 100, 149, 150, 151, 199]
    got = [float(schedule(s)) for s in steps]
    reference = {
        "step": lambda t: _step_reference(0.05, total, 0.1, (0.5, 0.75), t),
        "cosine": lambda t: _cosine_reference(0.05, total, 20, t),
        "one_cycle": lambda t: _one_cycle_reference(0.05, total, 0.25, t),
    }[kind]
    schedule_helpers.assert_matches(got, [reference(t) for t in steps])
    optimizer = tuning.optimizer(
        keras_tuner.HyperParameters(),
        families="adam",
        learning_rate=schedule,
        lookahead=False,
    )
    assert _minimises(optimizer)


def test_step_boundaries_that_round_to_one_step_decay_once():
    # 0.5 * 3 and 0.6 * 3 both round to step 2.
    hp = keras_tuner.HyperParameters()
    schedule = tuning.learning_rate_schedule(
        hp, total_steps=3, kinds="step", learning_rate=1.0, step_boundaries=(0.5, 0.6)
    )
    schedule_helpers.assert_matches(
        [float(schedule(t)) for t in range(3)], [1.0, 1.0, 0.1]
    )


# ----------------------------------------------------------------------------------
# Argument validation.


@pytest.mark.parametrize(
    "helper, kwargs, message",
    [
        (
            tuning.optimizer,
            {"learning_rate": (0.0, 0.1)},
            r"Argument `learning_rate` must be a number or a \(min, max\) pair with "
            r"min <= max, both > 0\. Received: learning_rate=\(0\.0, 0\.1\)",
        ),
        (
            tuning.optimizer,
            {"learning_rate": 0.0},
            r"Argument `learning_rate` must be > 0\. Received: learning_rate=0\.0",
        ),
        (
            tuning.optimizer,
            {"weight_decay": (1e-2, 1e-4)},
            r"Argument `weight_decay` must be .* min <= max, both > 0\.",
        ),
        (
            tuning.optimizer,
            {"families": ("adam", "sgd")},
            r"Argument `families` must be one of 'adam', 'nesterov', 'radam', "
            r"'ranger'\. Received: families='sgd'",
        ),
        (tuning.optimizer, {"families": ()}, r"Argument `families` must name"),
        (tuning.optimizer, {"lookahead": "yes"}, r"Argument `lookahead` must be"),
        (
            tuning.optimizer,
            {"momentum": (0.9, 1.0)},
            r"Argument `momentum` must be .* both in \[0, 1\)\.",
        ),
        (
            tuning.optimizer,
            {"families": "adam", "momentum": 1.5},
            r"Argument `momentum` must be in \[0, 1\)\. Received: momentum=1\.5",
        ),
        (
            tuning.optimizer,
            {"grid_size": 1},
            r"Argument `grid_size` must be an integer >= 2\. Received: grid_size=1",
        ),
        (
            tuning.dropout_rate,
            {"rate": (0.2, 1.0)},
            r"Argument `rate` must be .* both in \[0, 1\)\. "
            r"Received: rate=\(0\.2, 1\.0\)",
        ),
        (tuning.dropout_rate, {"name": ""}, r"Argument `name` must be a non-empty"),
        (tuning.mixup_alpha, {"alpha": (0, 1)}, r"Argument `alpha` must be .* > 0\."),
        (
            tuning.augmentation_strength,
            {"strength": -0.5},
            r"Argument `strength` must be >= 0\. Received: strength=-0\.5",
        ),
    ],
)
def test_helper_arguments_are_validated(helper, kwargs, message):
    with pytest.raises(ValueError, match=message):
        helper(keras_tuner.HyperParameters(), **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"total_steps": 0}, r"Argument `total_steps` must be an integer >= 1\."),
        (
            {"total_steps": 10, "kinds": ("cosine", "linear")},
            r"Argument `kinds` must be one of 'step', 'cosine', 'one_cycle'\. "
            r"Received: kinds='linear'",
        ),
        (
            {"total_steps": 10, "step_boundaries": (0.7, 0.5)},
            r"Argument `step_boundaries` must be a non-empty increasing sequence",
        ),
        (
            {"total_steps": 10, "warmup_fraction": (0.0, 1.0)},
            r"Argument `warmup_fraction` must be .* both in \[0, 1\)\.",
        ),
        (
            {"total_steps": 10, "kinds": "cosine", "pct_start": (0.0, 0.5)},
            r"Argument `pct_start` must be .* both in \(0, 1\)\.",
        ),
        (
            {"total_steps": 10, "step_decay_rate": 1.5},
            r"Argument `step_decay_rate` must be in \(0, 1\]\.",
        ),
    ],
)
def test_schedule_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tuning.learning_rate_schedule(keras_tuner.HyperParameters(), **kwargs)


def test_search_arguments_are_validated(tmp_path):
    data = (np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"Argument `strategy` must be one of"):
        tuning.search(_build, data, data, strategy="bayesian", directory=tmp_path)
    with pytest.raises(ValueError, match=r"Argument `max_trials` must be an integer"):
        tuning.search(_build, data, data, max_trials=0, directory=tmp_path)
    with pytest.raises(ValueError, match=r"`validation_data` is required"):
        tuning.search(_build, data, objective="val_accuracy", directory=tmp_path)
    with pytest.raises(ValueError, match=r"Argument `build_model` must be"):
        tuning.search("model", data, data, directory=tmp_path)
    with pytest.raises(ValueError, match=r"Argument `train_data` must be \(x, y\)"):
        tuning.search(_build, data[:1], data, directory=tmp_path)
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------------
# Searches run end to end.


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
    return x, y


def _build(hp, grid_size=None):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(tuning.dropout_rate(hp, grid_size=grid_size)),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=tuning.optimizer(
            hp,
            families="adam",
            weight_decay=0.0,
            lookahead=False,
            grid_size=grid_size,
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@pytest.mark.smoke
def test_random_search_runs_to_completion(tmp_path, capsys):
    train, validation = _data(seed=0), _data(seed=1)
    result = tuning.search(
        _build,
        train,
        validation,
        strategy="random",
        max_trials=3,
        objective="val_accuracy",
        epochs=1,
        batch_size=16,
        seed=3,
        directory=tmp_path,
        num_best=2,
        verbose=1,
    )
    assert len(result.trials) == 3
    assert {t["status"] for t in result.trials} == {"COMPLETED"}
    scores = [t["score"] for t in result.trials]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert [t["score"] for t in result.best_trials] == sorted(scores, reverse=True)[:2]
    best = max(result.trials, key=lambda t: t["score"])
    assert result.best_hyperparameters.values == best["values"]
    for trial in result.trials:
        assert 1e-4 <= trial["values"]["learning_rate"] <= 1e-1
        assert 0.0 <= trial["values"]["dropout_rate"] <= 0.5
    printed = capsys.readouterr().out
    title = "Random search: 3 trials (3 completed); objective val_accuracy (max)"
    assert title in printed
    table = printed[printed.index("Best 2:") :].splitlines()
    assert table[1].split() == [
        "rank",
        "trial",
        "val_accuracy",
        "dropout_rate",
        "optimizer",
        "learning_rate",
        "weight_decay",
        "lookahead",
    ]
    assert table[2].split()[:3] == ["1", best["trial_id"], f"{best['score']:.4g}"]
    model = result.build_best_model()
    assert model.optimizer.learning_rate is not None
    assert str(result) == result.summary()


def test_grid_search_visits_the_whole_grid(tmp_path):
    # Data sets rather than arrays: `search` hands them to `fit` as they are.
    import tensorflow as tf

    train, validation = (
        tf.data.Dataset.from_tensor_slices(_data(seed=s)).batch(16) for s in (0, 1)
    )
    result = tuning.search(
        lambda hp: _build(hp, grid_size=2),
        train,
        validation,
        strategy="grid",
        max_trials=None,
        objective="val_loss",
        epochs=1,
        directory=tmp_path,
        verbose=0,
    )
    assert {t["status"] for t in result.trials} == {"COMPLETED"}
    visited = sorted(
        (t["values"]["dropout_rate"], t["values"]["learning_rate"])
        for t in result.trials
    )
    assert visited == [(0.0, 1e-4), (0.0, 0.1), (0.5, 1e-4), (0.5, 0.1)]
    assert result.direction == "min"
    assert result.best_trials[0]["score"] == min(t["score"] for t in result.trials)


class _MixupHyperModel(keras_tuner.HyperModel):
    """The documented way to search Mixup's alpha: sample it in `fit`."""

    def build(self, hp):
        model = keras.Sequential(
            [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
        )
        model.compile(
            optimizer="adam",
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["categorical_accuracy"],
        )
        return model

    def fit(self, hp, model, x, **kwargs):
        self.alphas.append(tuning.mixup_alpha(hp))
        mixup = ktp.layers.Mixup(alpha=self.alphas[-1], num_classes=2, seed=0)
        return model.fit(x.map(mixup), **kwargs)


def test_mixup_alpha_searched_in_a_hypermodel_fit(tmp_path):
    import tensorflow as tf

    x, y = _data(n=32)
    images = np.repeat(x, 4, axis=1).reshape(-1, 4, 4, 1)
    train = tf.data.Dataset.from_tensor_slices((images, y)).batch(8)
    validation = tf.data.Dataset.from_tensor_slices(
        (images, np.eye(2, dtype="float32")[y])
    ).batch(8)
    hypermodel = _MixupHyperModel()
    hypermodel.alphas = []
    result = tuning.search(
        hypermodel,
        train,
        validation,
        max_trials=2,
        seed=1,
        directory=tmp_path,
        verbose=0,
    )
    assert {t["status"] for t in result.trials} == {"COMPLETED"}
    alphas = sorted(t["values"]["mixup_alpha"] for t in result.trials)
    assert sorted(hypermodel.alphas) == alphas
    assert all(0.1 <= a <= 1.0 for a in alphas)


def test_tensorboard_hook_runs_only_with_a_tensorboard_callback(monkeypatch):
    calls = []
    monkeypatch.setattr(
        keras_tuner.RandomSearch,
        "_configure_tensorboard_dir",
        lambda self, callbacks, trial, execution=0: calls.append(len(callbacks)),
        raising=True,
    )
    tuner = object.__new__(_tuners.RandomSearch)
    tuner._configure_tensorboard_dir([keras.callbacks.History()], trial=None)
    assert calls == []
    board = keras.callbacks.TensorBoard(log_dir="unused")
    tuner._configure_tensorboard_dir([board], trial=None)
    assert calls == [1]


def test_compat_tensorboard_hook_is_the_one_keras_tuner_calls():
    """The private KerasTuner hook overridden in `_compat` still exists and is what
    `run_trial` calls, so the override keeps taking effect."""
    import inspect

    from keras_trainplus import _compat

    hook = "_configure_tensorboard_dir"
    assert callable(getattr(keras_tuner.Tuner, hook))
    assert f"self.{hook}(" in inspect.getsource(keras_tuner.Tuner.run_trial)
    for tuner_class in (_tuners.RandomSearch, _tuners.GridSearch):
        assert tuner_class.__mro__[1] is _compat.TensorBoardOnDemandTuner
        assert (
            getattr(tuner_class, hook)
            is _compat.TensorBoardOnDemandTuner.__dict__[hook]
        )
