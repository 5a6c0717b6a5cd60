"""Reading and driving the learning rate through optimizer wrappers.

`optimizers._common.optimizer_chain` walks a wrapper chain (Keras's
`LossScaleOptimizer`, keras_trainplus's `LookAhead`/`Ranger`, any wrapper exposing
its inner optimizer as `optimizer` or `inner_optimizer`); the callbacks that read or
set the learning rate (`SnapshotEnsemble`, `StochasticWeightAveraging`) use the
innermost optimizer, and refuse a `MultiOptimizer`, which has one rate per
sub-optimizer. The probe is the one of `tests/test_snapshot_ensemble.py`: `y = w x`
with `x = 1` and loss `mean(y)`, so SGD moves `w` by `-lr` per step; `LookAhead`
with `sync_period=1, slow_step_size=1` is its inner optimizer exactly.
"""

import os

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from keras_trainplus.optimizers._common import learning_rate_optimizer
from keras_trainplus.optimizers._common import optimizer_chain
from tests.helpers.backend import compile_modes
from tests.test_snapshot_ensemble import WeightRecorder
from tests.test_snapshot_ensemble import fit_probe
from tests.test_snapshot_ensemble import mean_prediction
from tests.test_snapshot_ensemble import paper_rates
from tests.test_snapshot_ensemble import snapshot_kernel

MULTI = getattr(keras.optimizers, "MultiOptimizer", None)


class Halving(keras.optimizers.Optimizer):
    """A user's wrapper exposing its inner optimizer as `optimizer`."""

    def __init__(self, optimizer):
        super().__init__(learning_rate=0.0)
        self.optimizer = optimizer


def _wrapped(kind, inner):
    if kind == "lookahead":
        return ktp.optimizers.LookAhead(inner, sync_period=1, slow_step_size=1.0)
    if kind == "loss_scale(lookahead)":
        return keras.optimizers.LossScaleOptimizer(
            ktp.optimizers.LookAhead(inner, 1, 1.0), initial_scale=1.0
        )
    if kind == "lookahead(loss_scale)":
        return ktp.optimizers.LookAhead(
            keras.optimizers.LossScaleOptimizer(inner, initial_scale=1.0), 1, 1.0
        )
    raise ValueError(kind)


WRAPPINGS = ["lookahead", "loss_scale(lookahead)", "lookahead(loss_scale)"]


def _probe(optimizer, compile_kwargs=None):
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer, loss=mean_prediction, **(compile_kwargs or {}))
    return model


@pytest.mark.smoke
def test_chain_walks_every_wrapper_outermost_first():
    sgd = keras.optimizers.SGD()
    assert optimizer_chain(sgd) == [sgd]
    scaled = keras.optimizers.LossScaleOptimizer(sgd)
    lookahead = ktp.optimizers.LookAhead(scaled)
    outer = keras.optimizers.LossScaleOptimizer(lookahead)
    assert [id(o) for o in optimizer_chain(outer)] == [
        id(outer),
        id(lookahead),
        id(scaled),
        id(sgd),
    ]
    ranger = ktp.optimizers.Ranger()
    assert [type(o).__name__ for o in optimizer_chain(ranger)] == ["Ranger", "RAdam"]
    user = Halving(lookahead)
    assert learning_rate_optimizer(user) is sgd


@pytest.mark.skipif(MULTI is None, reason="keras.optimizers.MultiOptimizer: 3.15+")
def test_multi_optimizer_ends_the_chain_and_has_no_single_rate():
    multi = MULTI(keras.optimizers.OptimizerMap(keras.optimizers.SGD(0.1)))
    wrapped = ktp.optimizers.LookAhead(multi)
    assert [id(o) for o in optimizer_chain(wrapped)] == [id(wrapped), id(multi)]
    with pytest.raises(ValueError, match=r"holds one per sub-optimizer \(SGD\)"):
        learning_rate_optimizer(wrapped)


@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
@pytest.mark.parametrize("kind", WRAPPINGS)
def test_snapshot_ensemble_drives_a_wrapped_float_rate(
    tmp_path, kind, mode, compile_kwargs
):
    model = _probe(_wrapped(kind, keras.optimizers.SGD(0.1)), compile_kwargs)
    recorder = WeightRecorder()
    snapshots = ktp.callbacks.SnapshotEnsemble(tmp_path, num_snapshots=2)
    fit_probe(model, [snapshots, recorder], steps_per_epoch=3, epochs=2)
    rates = -np.diff([0.0] + recorder.weights)
    np.testing.assert_allclose(rates, paper_rates(0.1, 6, 2), rtol=1e-5, atol=1e-7)
    assert len(snapshots.snapshot_paths) == 2
    np.testing.assert_allclose(
        snapshot_kernel(snapshots.snapshot_paths[-1]), recorder.weights[-1], rtol=1e-6
    )
    inner = learning_rate_optimizer(model.optimizer)
    np.testing.assert_allclose(float(inner.learning_rate), 0.1, rtol=1e-7)


def test_snapshot_ensemble_reads_a_wrapped_cyclic_schedule(tmp_path):
    schedule = ktp.schedules.CyclicCosineDecay(0.1, cycle_steps=3)
    model = _probe(ktp.optimizers.Ranger(schedule))
    snapshots = ktp.callbacks.SnapshotEnsemble(tmp_path, num_snapshots=2)
    fit_probe(model, [snapshots], steps_per_epoch=3, epochs=2)
    assert [os.path.basename(p) for p in snapshots.snapshot_paths] == [
        "snapshot-001.keras",
        "snapshot-002.keras",
    ]
    for path in snapshots.snapshot_paths:
        restored = keras.saving.load_model(path, compile=False)
        assert np.isfinite(restored.get_weights()[0]).all()


@pytest.mark.parametrize("kind", WRAPPINGS)
def test_swa_sets_and_restores_a_wrapped_rate(kind):
    model = _probe(_wrapped(kind, keras.optimizers.SGD(0.1)))
    recorder = WeightRecorder()
    swa = ktp.callbacks.StochasticWeightAveraging(start_epoch=1, swa_learning_rate=0.02)
    fit_probe(model, [swa, recorder], steps_per_epoch=2, epochs=2)
    rates = -np.diff([0.0] + recorder.weights)
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.02, 0.02], rtol=1e-5)
    inner = learning_rate_optimizer(model.optimizer)
    np.testing.assert_allclose(float(inner.learning_rate), 0.1, rtol=1e-7)


@pytest.mark.skipif(MULTI is None, reason="keras.optimizers.MultiOptimizer: 3.15+")
@pytest.mark.parametrize("callback", ["snapshots", "swa"])
def test_callbacks_refuse_a_multi_optimizer(tmp_path, callback):
    multi = MULTI(keras.optimizers.OptimizerMap(keras.optimizers.SGD(0.1)))
    model = _probe(multi)
    if callback == "snapshots":
        made = ktp.callbacks.SnapshotEnsemble(tmp_path, num_snapshots=1)
    else:
        made = ktp.callbacks.StochasticWeightAveraging(0, swa_learning_rate=0.01)
    with pytest.raises(ValueError, match=r"MultiOptimizer` holds one per"):
        fit_probe(model, [made], steps_per_epoch=2, epochs=1)
