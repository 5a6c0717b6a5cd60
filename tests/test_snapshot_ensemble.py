"""SnapshotEnsemble: cycle timing, the paper's rate at every step, atomic writes, resume.

The probe model is `y = w x` with `x = 1` and the loss `mean(y)`: its gradient is
exactly 1, so plain SGD moves `w` by `-lr` at each step and the weight trajectory
reveals the learning rate the optimizer really used, independently of the callback.
"""

import math
import os
import stat

import keras
import numpy as np
import pytest

from keras_trainplus.callbacks import SnapshotEnsemble
from keras_trainplus.ensemble import AveragingEnsemble
from keras_trainplus.schedules import CyclicCosineDecay
from tests.helpers import tolerance
from tests.helpers.backend import compile_modes
from tests.helpers.callbacks import Interrupt
from tests.helpers.callbacks import assert_mid_epoch_resume_warns
from tests.helpers.callbacks import assert_rejected_before_training
from tests.helpers.callbacks import refuse_writes
from tests.helpers.config import assert_config_roundtrip


def mean_prediction(y_true, y_pred):
    return keras.ops.mean(y_pred)


def probe_model(learning_rate=0.1, compile_kwargs=None, loss_scale=False):
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    optimizer = keras.optimizers.SGD(learning_rate)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer, loss=mean_prediction, **(compile_kwargs or {}))
    return model


class WeightRecorder(keras.callbacks.Callback):
    """Records the probe weight after every step."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(float(self.model.get_weights()[0][0, 0]))


def fit_probe(model, callbacks, steps_per_epoch, epochs, batch_size=2):
    x = np.ones((steps_per_epoch * batch_size, 1), "float32")
    return model.fit(
        x,
        x,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )


def paper_rates(a0, total, cycles):
    """a0/2 (cos(pi mod(t-1, ceil(T/M)) / ceil(T/M)) + 1), t = 1..T, in float64."""
    c = math.ceil(total / cycles)
    return np.array(
        [
            a0 / 2 * (math.cos(math.pi * ((t - 1) % c) / c) + 1)
            for t in range(1, total + 1)
        ]
    )


def rates_bound(weights, steps=1):
    """How far float32 per-step rates (or, with `steps`, their running sum) may be
    from the float64 ones: each probe weight `w - lr * 1` rounds once at the weights'
    scale (a rate is the difference of two), and each float32 rate is off by up to
    8 units of the peak rate 0.1 (the schedule's float32 cosine)."""
    return tolerance.float32_bound(2 * steps, weights) + tolerance.float32_bound(
        8 * steps, 0.1
    )


def snapshot_kernel(path):
    """The probe weight of a saved snapshot: the float32 number the model held at
    that step (saving and loading round nothing), so it equals the recorder's."""
    return float(keras.saving.load_model(path, compile=False).get_weights()[0][0, 0])


@pytest.mark.smoke
@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
@pytest.mark.parametrize("loss_scale", [False, True], ids=["sgd", "loss_scale"])
def test_float_rate_follows_paper_and_snapshots_at_cycle_ends(
    tmp_path, mode, compile_kwargs, loss_scale
):
    # T = 5 epochs x 3 steps = 15, M = 4: ceil(15/4) = 4, cycles end at 4, 8, 12 and
    # the truncated last one at 15 (two of them mid-epoch).
    model = probe_model(0.1, compile_kwargs, loss_scale)
    recorder = WeightRecorder()
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=4)
    fit_probe(model, [snapshots, recorder], steps_per_epoch=3, epochs=5)

    rates = -np.diff([0.0] + recorder.weights)
    tolerance.assert_within(
        rates, paper_rates(0.1, 15, 4), rates_bound(recorder.weights)
    )
    assert snapshots.snapshot_paths == [
        os.path.join(str(tmp_path), f"snapshot-00{k}.keras") for k in (1, 2, 3, 4)
    ]
    assert sorted(os.listdir(tmp_path)) == [
        f"snapshot-00{k}.keras" for k in (1, 2, 3, 4)
    ]
    for path, end in zip(snapshots.snapshot_paths, (4, 8, 12, 15)):
        assert snapshot_kernel(path) == recorder.weights[end - 1]
    # The optimizer's own rate is given back: the float32 number it held, exactly.
    assert float(model.optimizer.learning_rate) == np.float32(0.1)


@pytest.mark.parametrize("mode,compile_kwargs", compile_modes())
def test_schedule_path_reads_cycle_ends(tmp_path, mode, compile_kwargs):
    schedule = CyclicCosineDecay(0.1, cycle_steps=4)
    model = probe_model(schedule, compile_kwargs)
    recorder = WeightRecorder()
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=3)
    fit_probe(model, [snapshots, recorder], steps_per_epoch=2, epochs=6)

    rates = -np.diff([0.0] + recorder.weights)
    tolerance.assert_within(
        rates, paper_rates(0.1, 12, 3), rates_bound(recorder.weights)
    )
    assert len(snapshots.snapshot_paths) == 3
    for path, end in zip(snapshots.snapshot_paths, (4, 8, 12)):
        assert snapshot_kernel(path) == recorder.weights[end - 1]


def test_schedule_with_growing_cycles(tmp_path):
    # SGDR cycles of 2, 4 and 8 steps end at steps 2, 6 and 14 = 7 epochs x 2 steps.
    model = probe_model(CyclicCosineDecay(0.1, cycle_steps=2, cycle_mult=2.0))
    recorder = WeightRecorder()
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=3)
    fit_probe(model, [snapshots, recorder], steps_per_epoch=2, epochs=7)

    starts, lengths = [0, 2, 6], [2, 4, 8]
    expected = [
        0.05 * (math.cos(math.pi * (t - start) / length) + 1)
        for start, length in zip(starts, lengths)
        for t in range(start, start + length)
    ]
    rates = -np.diff([0.0] + recorder.weights)
    tolerance.assert_within(rates, expected, rates_bound(recorder.weights))
    for path, end in zip(snapshots.snapshot_paths, (2, 6, 14)):
        assert snapshot_kernel(path) == recorder.weights[end - 1]


def test_schedule_cycles_must_fit_the_run(tmp_path):
    model = probe_model(CyclicCosineDecay(0.1, cycle_steps=5))
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=3)
    with pytest.raises(
        ValueError, match=r"end at steps \[5, 10, 15\].*ends at step 12"
    ):
        fit_probe(model, [snapshots], steps_per_epoch=2, epochs=6)
    assert os.listdir(tmp_path) == []


def test_schedule_shorter_than_run_warns(tmp_path):
    model = probe_model(CyclicCosineDecay(0.1, cycle_steps=3))
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=2)
    with pytest.warns(
        UserWarning, match="ends at step 6 but the run goes on until step 8"
    ):
        fit_probe(model, [snapshots], steps_per_epoch=2, epochs=4)
    assert len(snapshots.snapshot_paths) == 2


def test_non_cyclic_schedule_is_rejected(tmp_path):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model = probe_model(schedule)
    with pytest.raises(ValueError, match="cycle_end_steps.*Received: ExponentialDecay"):
        fit_probe(model, [SnapshotEnsemble(tmp_path, 2)], steps_per_epoch=2, epochs=2)


@pytest.mark.parametrize(
    "cycles,epochs,message",
    [
        (
            13,
            6,
            r"`num_snapshots=13` cycles of ceil\(T/M\) = 1 steps do not fit in the T = 12",
        ),
        (
            6,
            5,
            r"`num_snapshots=6` cycles of ceil\(T/M\) = 2 steps do not fit in the T = 10",
        ),
    ],
)
def test_float_cycles_must_fit_the_run(tmp_path, cycles, epochs, message):
    model = probe_model()
    with pytest.raises(ValueError, match=message):
        fit_probe(
            model,
            [SnapshotEnsemble(tmp_path, cycles)],
            steps_per_epoch=2,
            epochs=epochs,
        )


def test_steps_per_execution_is_rejected(tmp_path):
    model = probe_model(compile_kwargs={"steps_per_execution": 2})
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        fit_probe(model, [SnapshotEnsemble(tmp_path, 2)], steps_per_epoch=2, epochs=2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"num_snapshots": 0},
            r"Argument `num_snapshots` must be an integer >= 1. Received: num_snapshots=0",
        ),
        ({"num_snapshots": 2.5}, r"`num_snapshots` must be an integer >= 1"),
        (
            {"num_snapshots": 2, "keep": 0},
            r"Argument `keep` must be an integer >= 1. Received: keep=0",
        ),
        (
            {"num_snapshots": 2, "verbose": 3},
            r"Argument `verbose` must be an integer in \[0, 2\]",
        ),
        (
            {"num_snapshots": 2, "directory": ""},
            r"Argument `directory` must be a non-empty path",
        ),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, message):
    kwargs = {"directory": str(tmp_path), **kwargs}
    with pytest.raises(ValueError, match=message):
        SnapshotEnsemble(**kwargs)


def test_config_roundtrip(tmp_path):
    assert_config_roundtrip(SnapshotEnsemble(str(tmp_path), 4, keep=2, verbose=1))


def test_keep_last_k(tmp_path):
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=4, keep=2)
    fit_probe(probe_model(), [snapshots], steps_per_epoch=2, epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["snapshot-003.keras", "snapshot-004.keras"]
    assert [os.path.basename(p) for p in snapshots.snapshot_paths] == [
        "snapshot-003.keras",
        "snapshot-004.keras",
    ]


def classifier_and_data(samples):
    """A small softmax classifier (SGD 0.5) and `samples` points of 3 classes."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.5), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 4)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, samples), 3)
    return model, x, y


def test_build_ensemble_averages_the_snapshots(tmp_path):
    model, x, y = classifier_and_data(16)
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=3)
    with pytest.raises(ValueError, match="No snapshot has been written yet"):
        snapshots.build_ensemble()
    model.fit(x, y, batch_size=8, epochs=6, verbose=0, callbacks=[snapshots])

    ensemble = snapshots.build_ensemble()
    assert isinstance(ensemble, AveragingEnsemble)
    members = [
        keras.saving.load_model(p, compile=False) for p in snapshots.snapshot_paths
    ]
    expected = np.mean(
        [m.predict(x, verbose=0).astype(np.float64) for m in members], axis=0
    )
    # Each 4-8-3 member evaluated apart or inside the ensemble, then a mean of 3.
    ulps = tolerance.network_ulps(4, 8) + 3
    tolerance.assert_close(ensemble.predict(x, verbose=0), expected, ulps)
    # The snapshots differ: the ensemble is not one model three times.
    assert not np.allclose(members[0].get_weights()[0], members[2].get_weights()[0])
    # Its members share one name (snapshots of one model); it still saves and loads.
    path = str(tmp_path / "ensemble.keras")
    ensemble.save(path)
    loaded = keras.saving.load_model(path)
    for member, original in zip(loaded.members, members):
        for got, want in zip(member.get_weights(), original.get_weights()):
            np.testing.assert_array_equal(got, want)


def test_warns_when_stopped_before_the_last_cycle(tmp_path):
    class StopAfterEpoch1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=4)
    with pytest.warns(UserWarning, match="2 of 4 snapshots not taken"):
        fit_probe(
            probe_model(), [snapshots, StopAfterEpoch1()], steps_per_epoch=2, epochs=4
        )
    assert len(snapshots.snapshot_paths) == 2


def test_crash_mid_write_keeps_previous_snapshots(tmp_path, monkeypatch):
    real_save = keras.Model.save
    saves = []

    def crashing_save(self, filepath, *args, **kwargs):
        saves.append(filepath)
        if len(saves) == 3:
            with open(filepath, "wb") as f:
                f.write(b"PK\x03\x04 half a zip")
            raise OSError("disk full (simulated)")
        return real_save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", crashing_save)
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=4)
    recorder = WeightRecorder()
    with pytest.raises(OSError, match="simulated"):
        fit_probe(probe_model(), [snapshots, recorder], steps_per_epoch=2, epochs=4)
    monkeypatch.setattr(keras.Model, "save", real_save)

    # The snapshot was saved to a temporary file in the same folder, never to its name.
    assert all(os.path.dirname(p) == str(tmp_path) for p in saves)
    assert not any(p.endswith("snapshot-003.keras") for p in saves)
    assert sorted(os.listdir(tmp_path)) == ["snapshot-001.keras", "snapshot-002.keras"]
    for path, end in zip(snapshots.snapshot_paths, (2, 4)):
        assert snapshot_kernel(path) == recorder.weights[end - 1]


@pytest.mark.parametrize(
    "schedule,same_objects",
    [(False, False), (True, False), (False, True)],
    ids=["float", "schedule", "float-same-objects"],
)
def test_resume_with_backup_and_restore(tmp_path, schedule, same_objects):
    # T = 6 epochs x 2 steps, M = 4: cycles end at steps 3, 6, 9, 12. The run dies
    # right after step 6 (snapshot 2 written inside epoch 2); the last backup is from
    # the end of epoch 1 (step 4), so epoch 2 is re-run and snapshot 2 rewritten.
    snapshot_dir, backup_dir = tmp_path / "snapshots", str(tmp_path / "backup")

    def learning_rate():
        return CyclicCosineDecay(0.1, cycle_steps=3) if schedule else 0.1

    first, first_model = (
        SnapshotEnsemble(snapshot_dir, num_snapshots=4),
        probe_model(learning_rate()),
    )
    with pytest.raises(RuntimeError, match="simulated"):
        fit_probe(
            first_model,
            [keras.callbacks.BackupAndRestore(backup_dir), first, Interrupt(2, 1)],
            steps_per_epoch=2,
            epochs=6,
        )
    assert sorted(os.listdir(snapshot_dir)) == [
        "snapshot-001.keras",
        "snapshot-002.keras",
    ]

    # A fresh process would rebuild the model (or the same objects are fitted again);
    # the callbacks come in the other order.
    recorder = WeightRecorder()
    if same_objects:
        second, model = first, first_model
    else:
        second, model = (
            SnapshotEnsemble(snapshot_dir, num_snapshots=4),
            probe_model(learning_rate()),
        )
    history = fit_probe(
        model,
        [second, keras.callbacks.BackupAndRestore(backup_dir), recorder],
        steps_per_epoch=2,
        epochs=6,
    )
    assert len(history.epoch) == 4 and len(recorder.weights) == 8  # epochs 2..5

    expected = -np.cumsum(paper_rates(0.1, 12, 4))  # the uninterrupted trajectory
    bound = rates_bound(expected, steps=len(expected))  # the sum of 12 rates
    tolerance.assert_within(recorder.weights, expected[4:], bound)
    assert sorted(os.listdir(snapshot_dir)) == [
        f"snapshot-00{k}.keras" for k in (1, 2, 3, 4)
    ]
    assert len(second.snapshot_paths) == 4
    for path, end in zip(second.snapshot_paths, (3, 6, 9, 12)):
        tolerance.assert_within(snapshot_kernel(path), expected[end - 1], bound)


@pytest.mark.parametrize("save_freq", ["epoch", 1])
@pytest.mark.parametrize("schedule", [False, True], ids=["float", "schedule"])
def test_resume_from_a_mid_epoch_backup_warns(tmp_path, save_freq, schedule):
    # Interrupted after batch 0 of epoch 2 (step 5): a backup every step holds the
    # model after step 5, and Keras resumes at the start of epoch 2 (step 4).
    snapshot_dir, backup_dir = tmp_path / "snapshots", str(tmp_path / "backup")

    def run(callbacks):
        rate = CyclicCosineDecay(0.1, cycle_steps=3) if schedule else 0.1
        snapshots = SnapshotEnsemble(snapshot_dir, num_snapshots=4)
        backup = keras.callbacks.BackupAndRestore(backup_dir, save_freq=save_freq)
        fit_probe(probe_model(rate), [backup, snapshots, *callbacks], 2, 6)

    assert_mid_epoch_resume_warns(
        run,
        Interrupt(2, 0),
        save_freq,
        "SnapshotEnsemble: training resumes at the start of epoch 2 with the "
        "optimizer at step 5, where an epoch boundary implies step 4",
    )


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_snapshots_have_the_permissions_of_model_save(tmp_path, mask):
    previous = os.umask(mask)
    try:
        model = probe_model()
        fit_probe(model, [SnapshotEnsemble(tmp_path / "s", 2)], 2, 2)
        model.save(tmp_path / "plain.keras")
    finally:
        os.umask(previous)
    expected = stat.S_IMODE(os.stat(tmp_path / "plain.keras").st_mode)
    assert expected == 0o666 & ~mask
    for name in ("snapshot-001.keras", "snapshot-002.keras"):
        assert stat.S_IMODE(os.stat(tmp_path / "s" / name).st_mode) == expected


def test_leftover_temporary_files_are_removed_when_training_begins(tmp_path):
    leftover = ".snapshot-002.keras.partial-0123456789abcdef.keras"
    # and the name the previous release's temporary files had (mkstemp's)
    legacy = ".snapshot-k2_9xq0a.keras"
    kept = [".other.partial-0123456789abcdef", ".snapshot-notes.keras", "notes.txt"]
    for name in (leftover, legacy, *kept):
        (tmp_path / name).write_text("x")

    class Listing(keras.callbacks.Callback):
        names = None

        def on_train_batch_begin(self, batch, logs=None):
            if self.names is None:  # before the first step
                self.names = sorted(os.listdir(tmp_path))

    listing = Listing()
    fit_probe(probe_model(), [SnapshotEnsemble(tmp_path, 2), listing], 2, 2)
    assert listing.names == sorted(kept)


def test_unusable_directory_fails_before_training(tmp_path, monkeypatch):
    def fit(directory):
        return lambda callbacks: fit_probe(
            probe_model(), [SnapshotEnsemble(directory, 2), *callbacks], 2, 2
        )

    target = tmp_path / "file"
    target.write_text("x")
    assert_rejected_before_training(
        fit(target), "directory", target, "it is an existing file"
    )
    assert_rejected_before_training(
        fit(target / "sub"), "directory", target / "sub", "it cannot be created"
    )
    refusing = tmp_path / "read_only"
    refusing.mkdir()
    refuse_writes(monkeypatch, refusing)
    assert_rejected_before_training(
        fit(refusing),
        "directory",
        refusing,
        "a file cannot be created in it",
        r" \(Permission denied\)",
    )


@pytest.mark.smoke
def test_non_finite_snapshots_are_skipped_and_the_ensemble_stays_finite(tmp_path):
    # 4 epochs of 2 steps, 4 cycles ending at steps 2, 4, 6, 8. A NaN input at step
    # 5 makes the loss, then the weights, NaN: snapshots 3 and 4 are skipped.
    model, x, y = classifier_and_data(4)
    x_nan = np.concatenate([x, x, x]).copy()
    x_nan[8, 0] = np.nan  # first batch of epoch 2 (step 5)
    data = endless_batches(x_nan, np.concatenate([y, y, y]))
    snapshots = SnapshotEnsemble(tmp_path, num_snapshots=4)
    with pytest.warns(UserWarning) as caught:
        model.fit(data, epochs=4, steps_per_epoch=2, verbose=0, callbacks=[snapshots])
    messages = [str(w.message) for w in caught]
    for index in (3, 4):
        assert any(
            f"the weights at the end of cycle {index} are not finite" in m
            for m in messages
        )
    assert any(
        "Training ended with 2 of 4 snapshots not taken: 2 with non-finite weights."
        in m
        for m in messages
    )
    assert sorted(os.listdir(tmp_path)) == ["snapshot-001.keras", "snapshot-002.keras"]
    assert not np.isfinite(model.get_weights()[0]).all()
    prediction = snapshots.build_ensemble().predict(x, verbose=0)
    assert np.isfinite(prediction).all()
    # A softmax row of k = 3 sums to 1 within its exps (2 units each, should they
    # not cancel), the k - 1 additions and k divisions; the mean of the M = 2
    # members rounds M times per probability, this sum k - 1 times: < 12 units.
    tolerance.assert_close(prediction.sum(axis=1), 1.0, 12)


def endless_batches(x, y, batch_size=2):
    """An endless generator of the batches of `(x, y)`, in order (any backend)."""

    def batches():
        while True:
            for start in range(0, len(x), batch_size):
                yield x[start : start + batch_size], y[start : start + batch_size]

    return batches()
