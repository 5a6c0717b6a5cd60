"""The sampling core shared by the geometric layers, and their seeding across processes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf

from keras_trainplus import _compat
from keras_trainplus.layers import RandomAffine
from keras_trainplus.layers import _sampling
from tests.helpers import augmentation as contract
from tests.helpers import tolerance

SCIPY_MODES = {
    "reflect": "reflect",
    "wrap": "grid-wrap",
    "nearest": "nearest",
    "constant": "grid-constant",
}


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", sorted(SCIPY_MODES))
def test_sample_matches_scipy_map_coordinates_inside_and_outside(
    fill_mode, interpolation
):
    rng = np.random.default_rng(0)
    image = rng.random((1, 12, 17, 2)).astype("float32")
    ys = rng.uniform(-15, 27, (1, 30, 40)).astype("float32")
    xs = rng.uniform(-20, 37, (1, 30, 40)).astype("float32")
    ops = RandomAffine().backend
    out = _sampling.sample(
        ops,
        ops.convert_to_tensor(image),
        ops.convert_to_tensor(ys),
        ops.convert_to_tensor(xs),
        interpolation,
        fill_mode,
        fill_value=0.3,
    )
    order = 1 if interpolation == "bilinear" else 0
    reference = np.stack(
        [
            ndi.map_coordinates(
                image[0, ..., k].astype(np.float64),
                [ys[0], xs[0]],
                order=order,
                mode=SCIPY_MODES[fill_mode],
                cval=0.3,
            )
            for k in range(2)
        ],
        axis=-1,
    )
    ulps = tolerance.sampling_ulps(max(np.abs(ys).max(), np.abs(xs).max()))
    tolerance.assert_close(contract.to_numpy(out)[0], reference, ulps, scale=image)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", sorted(SCIPY_MODES))
def test_separable_reader_matches_scipy_on_axis_aligned_maps(fill_mode, interpolation):
    rng = np.random.default_rng(1)
    image = rng.random((2, 9, 13, 3)).astype("float32")
    rows = rng.uniform(-6, 15, (2, 7)).astype("float32")
    cols = rng.uniform(-8, 20, (2, 11)).astype("float32")
    ops = RandomAffine().backend
    out = _sampling.sample_separable(
        ops,
        ops.convert_to_tensor(image),
        ops.convert_to_tensor(rows),
        ops.convert_to_tensor(cols),
        interpolation,
        fill_mode,
        fill_value=-0.4,
    )
    order = 1 if interpolation == "bilinear" else 0
    for b in range(2):
        ys, xs = np.meshgrid(rows[b], cols[b], indexing="ij")
        reference = np.stack(
            [
                ndi.map_coordinates(
                    image[b, ..., k].astype(np.float64),
                    [ys, xs],
                    order=order,
                    mode=SCIPY_MODES[fill_mode],
                    cval=-0.4,
                )
                for k in range(3)
            ],
            axis=-1,
        )
        ulps = tolerance.sampling_ulps(max(np.abs(rows).max(), np.abs(cols).max()))
        tolerance.assert_close(contract.to_numpy(out)[b], reference, ulps, scale=image)


@pytest.mark.smoke
def test_points_marked_invalid_read_the_fill_value():
    ops = RandomAffine().backend
    image = ops.convert_to_tensor(np.ones((1, 4, 4, 1), "float32"))
    grid = ops.convert_to_tensor(np.full((1, 2, 2), 1.5, "float32"))
    valid = ops.convert_to_tensor(np.array([[[True, False], [False, True]]]))
    out = _sampling.sample(ops, image, grid, grid, fill_value=-2.0, valid=valid)
    np.testing.assert_array_equal(contract.to_numpy(out)[0, ..., 0], [[1, -2], [-2, 1]])


def test_tensorflow_xla_context_is_detected_while_tracing():
    seen = []

    def probe(x):
        seen.append(_compat.in_tensorflow_xla_context())
        return x + 1.0

    tf.function(probe, jit_compile=True)(tf.constant(1.0))
    tf.function(probe)(tf.constant(1.0))
    probe(tf.constant(1.0))
    assert seen == [True, False, False]


SCRIPT = """
import numpy as np
from keras_trainplus.layers import (RandomAffine, RandomLensDistortion,
    RandomResizedCrop, RandomScaleCrop)
images = np.random.default_rng(0).random((2, 24, 28, 3)).astype("float32")
layers = [RandomAffine(0.2, 0.1, 0.2, 0.1, 0.1, seed=11),
          RandomLensDistortion(seed=11), RandomResizedCrop(16, 16, seed=11),
          RandomScaleCrop(16, 16, (24, 40), seed=11)]
for layer in layers:
    layer(images)  # the second call must also be reproducible
    print(np.asarray(layer(images)).round(4).tobytes().hex()[:4000])
"""


def test_same_seed_same_outputs_in_fresh_processes():
    env = dict(os.environ, PYTHONPATH=os.getcwd())

    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    first, second = (p.communicate(timeout=300)[0].split() for p in processes)
    assert [p.returncode for p in processes] == [0, 0]
    assert len(first) == 4 and first == second
