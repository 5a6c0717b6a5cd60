"""Mixup and CutMix against float64 NumPy references and the papers' distributions."""

import re

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from skimage import data as skdata

from keras_trainplus.layers import Mixup
from keras_trainplus.layers._beta import symmetric_beta
from tests.helpers import tolerance
from tests.helpers.backend import only_backends
from tests.helpers.config import assert_config_roundtrip


def _samples():
    """Three real RGB photographs, 24 x 32, uint8."""
    return np.stack(
        [
            skdata.astronaut()[:384:16, :512:16],
            skdata.coffee()[:384:16, :512:16],
            skdata.chelsea()[:240:10, :320:10],
        ]
    )


# A float32 blend `lam * a + (1 - lam) * b` is off by lam's own rounding, that of
# 1 - lam, of both products and of the sum: 5 units of EPS32 at the scale of `a`
# and `b` (labels: 1; images: their largest value), on any CPU.
BLEND_ULPS = 5


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _t(value, dtype="float32"):
    return keras.ops.convert_to_tensor(value, dtype)


@pytest.mark.smoke
def test_mixup_is_the_convex_combination_with_the_rolled_batch():
    images = _samples()
    labels = np.array([0, 2, 1])
    layer = Mixup(num_classes=3)
    lam = 0.3
    transformation = {"lam": _t(lam), "label_weight": _t(lam)}
    out = layer.transform_images(_t(images), transformation)
    partners = images[[2, 0, 1]].astype(np.float64)
    blend = lam * images + (1 - lam) * partners
    tolerance.assert_close(_np(out), blend, BLEND_ULPS, scale=images)

    mixed = layer.mix(layer.encode_labels(labels), transformation["label_weight"])
    onehot = np.eye(3)[labels]
    blend = lam * onehot + (1 - lam) * onehot[[2, 0, 1]]
    tolerance.assert_close(_np(mixed), blend, BLEND_ULPS)


# Below a ~ 0.1, a good share of Beta(a, a) lies within float32 rounding of 0 and 1,
# which a KS test against the continuous law would flag.
@pytest.mark.parametrize("a", [0.2, 0.5, 1.0, 4.0])
def test_beta_sampler_follows_beta(a):
    layer = Mixup(seed=int(a * 100))
    draws = _np(symmetric_beta(layer.backend, layer._seed(), [a] * 3000))
    assert np.all((draws >= 0) & (draws <= 1))
    assert scipy.stats.kstest(draws, "beta", args=(a, a)).pvalue > 0.01


def _draws(layer, batches, batch_size=4, size=(6, 5)):
    """Runs `layer` on `batches` batches of constant images (sample i has value i+1)
    with labels i, and returns (images, labels) per batch as float64 arrays."""
    images = np.broadcast_to(
        np.arange(1, batch_size + 1, dtype="float32")[:, None, None, None],
        (batch_size, *size, 3),
    )
    labels = np.arange(batch_size)
    ds = tf.data.Dataset.from_tensors((images, labels)).repeat(batches).map(layer)
    pairs = [(np.float64(x.numpy()), np.float64(y.numpy())) for x, y in ds]
    return images.astype(np.float64), pairs


@pytest.mark.parametrize("alpha", [0.2, 2.0])
def test_random_mixup_outputs_are_convex_and_weights_follow_beta(alpha):
    layer = Mixup(alpha=alpha, num_classes=4, seed=12)
    images, pairs = _draws(layer, 400, size=(1, 1))
    partners = np.roll(images, 1, axis=0)
    weights = []
    for x, y in pairs:
        tolerance.assert_close(y.sum(axis=1), 1.0, BLEND_ULPS)
        lam = y[0, 0]
        # Row i is lam e_i + (1 - lam) e_{i-1}; the images mix with the same weight.
        blend = lam * np.eye(4) + (1 - lam) * np.roll(np.eye(4), 1, axis=0)
        tolerance.assert_close(y, blend, BLEND_ULPS)
        blend = lam * images + (1 - lam) * partners
        tolerance.assert_close(x, blend, BLEND_ULPS, scale=images)
        weights.append(lam)
    assert scipy.stats.kstest(weights, "beta", args=(alpha, alpha)).pvalue > 0.01
    other = 1.0 if alpha < 1 else 4.0
    assert scipy.stats.kstest(weights, "beta", args=(other, other)).pvalue < 1e-4


def test_cutmix_label_weight_is_the_unpasted_area_and_switching_rate():
    cutmix_alpha, switch_prob = 1.0, 0.7
    layer = Mixup(
        alpha=0.5,
        cutmix_alpha=cutmix_alpha,
        switch_prob=switch_prob,
        num_classes=4,
        seed=3,
    )
    images, pairs = _draws(layer, 300, size=(9, 7))
    partner_values = np.roll(np.arange(1, 5), 1)
    cutmix_batches, clipped = 0, 0
    for x, y in pairs:
        tolerance.assert_close(y.sum(axis=1), 1.0, BLEND_ULPS)
        values = x[..., 0]
        is_cutmix = np.all(np.isin(values, np.arange(1, 5)))
        if not is_cutmix:
            continue
        cutmix_batches += 1
        pasted = values != np.arange(1, 5)[:, None, None]
        # One box for the whole batch, filled from the partner, label weight = 1 - area.
        assert np.all(pasted == pasted[:1])
        np.testing.assert_array_equal(
            values[pasted],
            np.broadcast_to(partner_values[:, None, None], values.shape)[pasted],
        )
        box = pasted[0]
        rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
        if box.any():
            assert box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
            clipped += rows[0] == 0 or cols[0] == 0 or rows[-1] == 8 or cols[-1] == 6
        tolerance.assert_close(np.diag(y), 1.0 - box.mean(), BLEND_ULPS)
    assert clipped > 0
    # The number of CutMix batches is Binomial(300, switch_prob).
    assert scipy.stats.binomtest(cutmix_batches, 300, switch_prob).pvalue > 0.01


def test_cutmix_with_a_given_box_clipped_at_the_border():
    images = _samples()  # 24 x 32
    layer = Mixup(cutmix_alpha=1.0, num_classes=3)
    transformation = {
        "lam": _t(0.9),
        "use_cutmix": _t(True, "bool"),
        "top": _t(-3, "int32"),
        "left": _t(25, "int32"),
        "box_height": _t(10, "int32"),
        "box_width": _t(12, "int32"),
    }
    out = _np(layer.transform_images(_t(images), transformation))
    expected = images.astype(np.float64)
    expected[:, 0:7, 25:32] = images[[2, 0, 1], 0:7, 25:32]
    np.testing.assert_array_equal(out, expected)
    area = layer._box_area(transformation, 24, 32)
    tolerance.assert_close(_np(area), 7 * 7 / (24 * 32), 1)  # one division

    first = Mixup(cutmix_alpha=1.0, num_classes=3, data_format="channels_first")
    out = first.transform_images(_t(np.transpose(images, (0, 3, 1, 2))), transformation)
    np.testing.assert_array_equal(_np(out), np.transpose(expected, (0, 3, 1, 2)))


@pytest.mark.smoke
def test_label_forms_and_smoothing():
    images = _samples()
    layer = Mixup(num_classes=5, label_smoothing=0.1, seed=0)
    smoothed = np.eye(5)[[1, 4, 0]] * 0.9 + 0.1 / 5
    classes = np.array([1, 4, 0])
    for labels in (classes, classes[:, None], np.eye(5)[classes]):
        x, y = layer(images, labels)
        y = _np(y)
        # y = lam s_i + (1 - lam) s_{i-1}: solve lam from sample 0 (classes 1 and 0).
        lam = (y[0, 1] - 0.02) / 0.9
        # The blend, smoothing's product and sum, and lam solved back from a value
        # rounded to float32 (1 / 0.9 of a unit).
        blend = lam * smoothed + (1 - lam) * smoothed[[2, 0, 1]]
        tolerance.assert_close(y, blend, BLEND_ULPS + 4)
        assert x.shape == images.shape
    # At inference: one-hot labels, untouched images, no smoothing.
    x, y = layer(images, np.array([1, 4, 0]), training=False)
    np.testing.assert_array_equal(_np(x), images)
    np.testing.assert_array_equal(_np(y), np.eye(5)[[1, 4, 0]])


@pytest.mark.smoke
@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_odd_batch_sizes(batch_size):
    rng = np.random.default_rng(batch_size)
    images = rng.uniform(0, 1, (batch_size, 4, 4, 3)).astype("float32")
    labels = rng.integers(0, 3, batch_size)
    x, y = Mixup(alpha=1.0, cutmix_alpha=1.0, num_classes=3, seed=1)(images, labels)
    x, y = _np(x), _np(y)
    tolerance.assert_close(y.sum(1), 1.0, BLEND_ULPS)
    if batch_size == 1:  # a sample paired with itself is unchanged
        tolerance.assert_close(x, images, BLEND_ULPS)
        tolerance.assert_close(y, np.eye(3)[labels], BLEND_ULPS)
    lo = np.minimum(images, np.roll(images, 1, 0))
    hi = np.maximum(images, np.roll(images, 1, 0))
    slack = tolerance.float32_bound(BLEND_ULPS, images)
    assert np.all((x >= lo - slack) & (x <= hi + slack))


@pytest.mark.smoke
def test_structures_in_tf_data_with_a_partial_last_batch():
    images = np.tile(_samples(), (3, 1, 1, 1))[:7]
    labels = np.arange(7) % 3
    weights = np.linspace(0.5, 2.0, 7).astype("float32")
    layer = Mixup(alpha=0.3, cutmix_alpha=1.0, num_classes=3, seed=5)

    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).map(layer)
    assert [(tuple(x.shape), tuple(y.shape)) for x, y in ds] == [
        ((4, 24, 32, 3), (4, 3)),
        ((3, 24, 32, 3), (3, 3)),
    ]
    ds = tf.data.Dataset.from_tensor_slices((images, labels, weights)).batch(4)
    for start, (_, y, w) in zip((0, 4), ds.map(layer)):
        # Weights mix with the labels' weight, read off sample 1 (its class differs
        # from its partner's): y[1] = lam e_{c_1} + (1 - lam) e_{c_0}.
        lam = y.numpy()[1, labels[start + 1]]
        given = weights[start : start + 4]
        blend = lam * given + (1 - lam) * np.roll(given, 1)
        tolerance.assert_close(w.numpy(), blend, BLEND_ULPS, scale=given)
    ds = tf.data.Dataset.from_tensor_slices(
        {"images": images, "labels": labels, "sample_weight": weights}
    ).batch(4, drop_remainder=False)
    out = list(ds.map(layer))
    assert sorted(out[0]) == ["images", "labels", "sample_weight"]
    assert out[1]["labels"].shape == (3, 3)


@pytest.mark.smoke
def test_feeds_model_fit_with_sample_weights():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 8, 3)).astype("uint8")
    labels = rng.integers(0, 4, 10)
    weights = np.ones(10, "float32")
    mixup = Mixup(alpha=0.4, cutmix_alpha=1.0, num_classes=4, seed=0)
    ds = tf.data.Dataset.from_tensor_slices((images, labels, weights)).batch(4)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4)]
    )
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(ds.map(mixup), epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_sample_weights_mix_like_labels():
    images = _samples()
    labels = np.array([0, 1, 2])
    weights = np.array([1.0, 0.0, 3.0], "float32")
    x, y, w = Mixup(alpha=1.0, num_classes=3, seed=9)(images, labels, weights)
    lam = _np(y)[0, 0]
    expected = lam * weights + (1 - lam) * weights[[2, 0, 1]]
    tolerance.assert_close(_np(w), expected, BLEND_ULPS, scale=weights)


def test_same_seed_same_outputs():
    def run(seed):
        images = np.random.default_rng(0).uniform(0, 1, (6, 5, 5, 3)).astype("float32")
        layer = Mixup(alpha=1.0, cutmix_alpha=1.0, num_classes=2, seed=seed)
        ds = tf.data.Dataset.from_tensor_slices((images, np.arange(6) % 2)).batch(3)
        return np.concatenate([x.numpy() for x, _ in ds.repeat(2).map(layer)])

    np.testing.assert_array_equal(run(21), run(21))
    assert not np.allclose(run(21), run(22))


@only_backends("tensorflow")
@pytest.mark.parametrize("jit_compile", [False, True])
def test_inside_tf_function(jit_compile):
    layer = Mixup(alpha=1.0, cutmix_alpha=1.0, num_classes=3, seed=2)
    fn = tf.function(lambda x, y: layer(x, y), jit_compile=jit_compile)
    images = _samples().astype("float32")
    for _ in range(3):
        x, y = fn(images, tf.constant([0, 1, 2]))
        tolerance.assert_close(y.numpy().sum(1), 1.0, BLEND_ULPS)
        lo = np.minimum(images, np.roll(images, 1, 0))
        assert np.all(x.numpy() >= lo - tolerance.float32_bound(BLEND_ULPS, images))
    assert fn.experimental_get_tracing_count() == 1


@only_backends("jax")
def test_inside_jax_jit():
    import jax

    layer = Mixup(alpha=1.0, cutmix_alpha=1.0, num_classes=3, seed=2)

    @jax.jit
    def step(state, images, labels):
        (x, y), state = layer.stateless_call([], state, (images, labels))
        return x, y, state

    state = [v.value for v in layer.non_trainable_variables]
    images = _samples().astype("float32")
    draws = []
    for _ in range(3):
        x, y, state = step(state, images, np.array([0, 1, 2]))
        tolerance.assert_close(np.asarray(y).sum(1), 1.0, BLEND_ULPS)
        draws.append(np.asarray(y))
    assert not np.allclose(draws[0], draws[1])
    assert step._cache_size() == 1


def test_output_shapes():
    layer = Mixup(num_classes=10)
    assert layer.compute_output_shape(((None, 8, 8, 3), (None,))) == (
        (None, 8, 8, 3),
        (None, 10),
    )
    shapes = {"images": (4, 8, 8, 3), "labels": (4, 10), "sample_weight": (4,)}
    assert layer.compute_output_shape(shapes) == shapes


def test_config_roundtrip():
    layer = Mixup(
        alpha=0.4,
        cutmix_alpha=1.0,
        switch_prob=0.3,
        num_classes=10,
        label_smoothing=0.1,
        seed=4,
    )
    assert_config_roundtrip(layer)


@pytest.mark.smoke
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.0}, r"Argument `alpha` must be > 0.0. Received: alpha=0.0"),
        ({"cutmix_alpha": -1}, r"Argument `cutmix_alpha` must be >= 0.0. Received: "),
        ({"switch_prob": 1.5}, r"`switch_prob` must be in \[0.0, 1.0\]. Received: "),
        ({"num_classes": 0}, r"`num_classes` must be an integer >= 1. Received: "),
        ({"num_classes": 2.5}, r"`num_classes` must be an integer >= 1. Received: "),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must be in \[0.0, 1.0\)."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Mixup(**kwargs)


@pytest.mark.smoke
def test_bad_inputs():
    images = np.zeros((2, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match=r"`num_classes`.*Received: num_classes=None"):
        Mixup()(images, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"rank 4 .*: images.shape=\(4, 4, 3\)"):
        Mixup(num_classes=2)(images[0], np.array([0]))
    with pytest.raises(ValueError, match=r"Received: labels.shape=\(2, 2, 2\)"):
        Mixup(num_classes=2)(images, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"does not match num_classes=3"):
        Mixup(num_classes=3)(images, np.eye(2))
    with pytest.raises(ValueError, match=r"Received keys: \['images', 'label'\]"):
        Mixup(num_classes=2)({"images": images, "label": np.array([0, 1])})
    with pytest.raises(ValueError, match=r"Mixup expects \(images, labels\)"):
        Mixup(num_classes=2)(images)


BAD_CLASS_INDICES = [
    pytest.param(np.array([0, 1, 10, 2]), "[10]", id="too_large"),
    pytest.param(np.array([0, -1, 2, 3]), "[-1]", id="negative"),
    pytest.param(np.array([0.0, 2.5, 1.0, 3.0], "float32"), "[2.5]", id="fraction"),
    pytest.param(np.array([[0], [1], [12], [2]]), "[12]", id="column"),
]


@pytest.mark.smoke
@pytest.mark.parametrize("labels, bad", BAD_CLASS_INDICES)
@pytest.mark.parametrize("training", [True, False])
def test_invalid_class_indices_fail_in_eager_calls(labels, bad, training):
    images = np.zeros((4, 4, 4, 3), "float32")
    message = (
        r"Mixup got class-index labels outside \[0, 10\) or not integers "
        rf"\(num_classes=10\)\. Received: invalid labels {re.escape(bad)}"
    )
    with pytest.raises(ValueError, match=message):
        Mixup(num_classes=10)(images, labels, training=training)


@pytest.mark.parametrize("labels, bad", BAD_CLASS_INDICES)
def test_invalid_class_indices_fail_in_tf_data(labels, bad):
    images = np.zeros((4, 4, 4, 3), "float32")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Mixup got class-index labels outside \[0, 10\) or not integers",
    ):
        list(ds.map(Mixup(num_classes=10, seed=0)))
    # Valid labels of the same dtype pass.
    good = np.where((labels >= 0) & (labels < 10), np.floor(labels), 0)
    ds = tf.data.Dataset.from_tensor_slices((images, good.astype(labels.dtype)))
    assert len(list(ds.batch(2).map(Mixup(num_classes=10, seed=0)))) == 2


def _compiled_mixup(layer):
    """`layer` on (images, labels), compiled by XLA on this backend."""
    if keras.backend.backend() == "jax":
        import jax

        state = [v.value for v in layer.non_trainable_variables]

        @jax.jit
        def run(images, labels):
            return layer.stateless_call([], state, (images, labels))[0]

        return run
    return tf.function(lambda x, y: layer(x, y), jit_compile=True)


@only_backends("tensorflow", "jax")
def test_invalid_class_indices_give_nan_rows_under_xla():
    # XLA cannot raise on values: the bad label's row is NaN, so is the row mixed
    # with it (sample 3 is paired with sample 2), and the loss would be NaN.
    images = np.zeros((6, 4, 4, 3), "float32")
    labels = np.array([0, 1, 7, 2, 1, 0])
    _, mixed = _compiled_mixup(Mixup(alpha=1.0, num_classes=3, seed=1))(images, labels)
    mixed = _np(mixed)
    assert np.isnan(mixed[[2, 3]]).all()
    assert np.isfinite(mixed[[0, 1, 4, 5]]).all()
    tolerance.assert_close(mixed[[0, 1, 4, 5]].sum(axis=1), 1.0, BLEND_ULPS)


@pytest.mark.smoke
def test_batch_size_mismatch_fails():
    images = np.zeros((8, 4, 4, 3), "float32")
    with pytest.raises(
        ValueError,
        match=r"Mixup needs one label \(and sample weight\) per image: the batch sizes "
        r"differ\. Received: images.shape=\(8, 4, 4, 3\), labels.shape=\(5,\)",
    ):
        Mixup(num_classes=10)(images, np.arange(5))
    with pytest.raises(ValueError, match=r"labels.shape=\(8, 10\), sample_weight"):
        Mixup(num_classes=10)(images, np.eye(10)[np.arange(8) % 10], np.ones(3))


def test_batch_size_mismatch_fails_in_tf_data():
    # Batches of 4 images with batches of 3 labels: unknown (None) batch sizes when
    # the map is traced, so the check runs with the pipeline.
    images = tf.data.Dataset.from_tensor_slices(np.zeros((8, 4, 4, 3), "float32"))
    labels = tf.data.Dataset.from_tensor_slices(np.arange(6) % 3)
    ds = tf.data.Dataset.zip((images.batch(4), labels.batch(3)))
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"the batch sizes differ.*labels vs images",
    ):
        list(ds.map(Mixup(num_classes=3, seed=0)))


@pytest.mark.smoke
@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
def test_inside_a_model_is_refused(functional):
    message = (
        r"it mixes the labels with the images, so it belongs in the input pipeline "
        r"\(`dataset.map\(mixup\)`\), not in a model, which sees the images alone\. "
        r"Received: one tensor of shape \(None, 8, 8, 3\)"
    )
    with pytest.raises(ValueError, match=message):
        if functional:
            inputs = keras.Input((8, 8, 3))
            keras.Model(inputs, Mixup(num_classes=3)(inputs))
        else:
            keras.Sequential(
                [keras.Input((8, 8, 3)), Mixup(num_classes=3), keras.layers.Flatten()]
            )
