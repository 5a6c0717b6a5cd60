"""Snapshot Ensembles: one run with a restarted cosine rate, a snapshot per cycle."""

import math
import os
import re
import warnings

import keras
import numpy as np

from keras_trainplus._files import atomic_path
from keras_trainplus._files import prepare_directory
from keras_trainplus._validation import PACKAGE
from keras_trainplus._validation import check_number
from keras_trainplus._validation import check_path
from keras_trainplus.callbacks import _resume
from keras_trainplus.callbacks._config import ConfigMixin
from keras_trainplus.callbacks._rates import learning_rate_config
from keras_trainplus.ensemble.averaging import AveragingEnsemble


@keras.saving.register_keras_serializable(package=PACKAGE)
class SnapshotEnsemble(ConfigMixin, keras.callbacks.Callback):
    """Saves a model snapshot at the end of each cycle of a cyclic cosine schedule.

    Snapshot Ensembles (Huang et al. 2017, arXiv:1704.00109) train one model with a
    cosine learning rate restarted `M` times (SGDR, Loshchilov & Hutter 2017,
    arXiv:1608.03983) and keep the model reached at the end of each cycle, where the
    rate is near 0 and the model sits in a local minimum; averaging the `M`
    snapshots gives an ensemble for the cost of one training run. With `T` the
    total number of steps of the run and `t = 1, ..., T` the step, the paper's rate is

        a(t) = a0 / 2 * (cos(pi * mod(t - 1, ceil(T / M)) / ceil(T / M)) + 1)

    and snapshot `k` is taken after step `min(k * ceil(T / M), T)`.

    Two ways to drive the rate:

    - the optimizer was built with a cyclic schedule exposing `cycle_end_steps(M)`
      (`keras_trainplus.schedules.CyclicCosineDecay`): the schedule runs in-graph
      and the callback snapshots at the optimizer steps it reports; they must all
      fall inside the run (`ValueError` otherwise, before the first step). A
      warning is given if training goes on after the last snapshot;
    - the optimizer has a float learning rate `a0`: the callback drives the formula
      above itself, by assigning the optimizer's learning-rate variable before every
      step (batch granularity). This keeps the optimizer's variables and config as
      the user built them, so `BackupAndRestore` checkpoints and the saved snapshots
      load with plain Keras whatever the order of the callbacks, and no retracing
      happens. The rate is reset to `a0` when training ends. `a0` is read from the
      optimizer when the callback is attached to the model (before any callback's
      `on_train_begin`, hence before `BackupAndRestore` restores a checkpoint; when
      a run it drove was interrupted, the same model and callback keep the first
      `a0`). Wrappers (`LossScaleOptimizer`, `LookAhead`, `Ranger`) are looked
      through to the optimizer that holds the rate; a Keras `MultiOptimizer`
      (one rate per sub-optimizer) is refused.
      Both ways need `steps_per_execution=1` and a known number of steps per epoch.

    Snapshots are whole models (`model.save()`, `.keras` format) named
    `snapshot-001.keras`, ..., with the permissions `model.save` gives, written
    atomically: an interruption mid-write leaves no partial snapshot and the
    previous snapshots untouched. `directory` is checked when training begins
    (created if missing, must accept a file), not at the first snapshot. A
    snapshot whose weights are not all finite (after a NaN loss) is skipped with a
    warning, so the ensemble never averages NaN.

    Resuming with `keras.callbacks.BackupAndRestore` (with its default
    `save_freq="epoch"`) neither loses nor duplicates snapshots: the callback
    locates itself from the epoch (float rate) or the optimizer's step counter
    (schedule), counts the cycles already completed as done, and a cycle re-run
    after an interruption overwrites its own file. A backup saved in the middle of
    an epoch (`save_freq=<int>`) cannot be resumed exactly, because Keras restarts
    that epoch from its first batch: the callback warns when a run resumed after
    the first epoch starts from one (its optimizer's step counter is not at that
    epoch's first step).

    Args:
        directory: folder for the snapshot files (a `str` or `pathlib.Path`;
            created if missing). Defaults to none (required).
        num_snapshots: `M`, the number of cycles and snapshots, an integer >= 1.
            Defaults to none (required).
        keep: keep only the last `keep` snapshots on disk (older ones are deleted
            as new ones are written), or `None` to keep all `M`. Defaults to `None`.
        verbose: 1 to print a line per snapshot. Defaults to 0.

    Example:

    >>> import numpy as np, tempfile
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> snapshots = SnapshotEnsemble(tempfile.mkdtemp(), num_snapshots=2)
    >>> _ = model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=4, batch_size=4,
    ...               callbacks=[snapshots], verbose=0)
    >>> len(snapshots.snapshot_paths)
    2
    >>> ensemble = snapshots.build_ensemble(method="logits")
    """

    def __init__(self, directory, num_snapshots, keep=None, verbose=0):
        super().__init__()
        self.directory = check_path("directory", directory)
        self.num_snapshots = check_number(
            "num_snapshots", num_snapshots, low=1, integer=True
        )
        self.keep = (
            None if keep is None else check_number("keep", keep, low=1, integer=True)
        )
        self.verbose = check_number("verbose", verbose, low=0, high=2, integer=True)
        self._rate = _resume.DrivenRate()
        self._done = set()
        self._skipped = set()

    def set_model(self, model):
        super().set_model(model)
        self._rate.observe(getattr(model, "optimizer", None))

    def snapshot_path(self, index):
        """The file of snapshot `index` (1-based)."""
        return os.path.join(self.directory, f"snapshot-{index:03d}.keras")

    @property
    def snapshot_paths(self):
        """The snapshot files of the run that are on disk, oldest first."""
        return [
            self.snapshot_path(k)
            for k in sorted(self._done)
            if os.path.exists(self.snapshot_path(k))
        ]

    def build_ensemble(self, weights=None, method="probabilities"):
        """Loads the snapshots on disk into an `AveragingEnsemble`.

        Args:
            weights: per-snapshot weights, see `AveragingEnsemble`. Defaults to `None`.
            method: see `AveragingEnsemble`. Defaults to `"probabilities"`.
        """
        paths = self.snapshot_paths
        if not paths:
            raise ValueError(
                "No snapshot has been written yet: call `fit` with this callback first."
            )
        return AveragingEnsemble.from_files(paths, weights=weights, method=method)

    def on_train_begin(self, logs=None):
        model = self.model
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps:
            raise ValueError(
                "SnapshotEnsemble needs the number of steps per epoch: pass "
                "`steps_per_epoch` to `fit` or data of known length."
            )
        if getattr(model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "SnapshotEnsemble changes the rate and saves between steps and needs "
                "`steps_per_execution=1`. Received: steps_per_execution="
                f"{model.steps_per_execution}"
            )
        self._steps, self._epochs = steps, epochs
        self._done = set()
        self._skipped = set()
        self._started = False
        learning_rate = learning_rate_config(model.optimizer)
        self._driven = not isinstance(learning_rate, dict)
        if self._driven:
            total = epochs * steps
            self._cycle_steps = _cycle_steps(total, self.num_snapshots)
            self._rate.begin(model.optimizer)
            self._cycle_ends = [
                min(k * self._cycle_steps, total)
                for k in range(1, self.num_snapshots + 1)
            ]
        else:
            schedule = keras.optimizers.schedules.deserialize(learning_rate)
            self._cycle_ends = _schedule_cycle_ends(schedule, self.num_snapshots)
        prepare_directory("directory", self.directory, "snapshot-*.keras")
        _remove_legacy_partial_snapshots(self.directory)

    def on_epoch_begin(self, epoch, logs=None):
        if self._driven:
            # Position = steps of the run completed, counted from the epoch index,
            # which `BackupAndRestore` restores.
            self._epoch_start = epoch * self._steps
        else:
            # Position = the optimizer's step counter, the schedule's own clock; read
            # once per epoch (the only host read), after any restore.
            self._epoch_start = _resume.optimizer_steps(self.model)
        if not self._started:
            self._started = True
            if epoch > 0:
                # A resumed run (a fresh one with an optimizer trained before
                # starts at epoch 0 at any step).
                _resume.warn_if_mid_epoch(
                    "SnapshotEnsemble", self.model, epoch, epoch * self._steps
                )
            self._check_fit(epoch)
            self._done = {
                k
                for k, end in enumerate(self._cycle_ends, start=1)
                if end <= self._epoch_start
            }

    def _check_fit(self, epoch):
        run_end = self._epoch_start + (self._epochs - epoch) * self._steps
        late = [e for e in self._cycle_ends if e > run_end]
        if late:
            raise ValueError(
                f"The {self.num_snapshots} cycles of the optimizer's schedule end at "
                f"steps {self._cycle_ends}, but this run ends at step {run_end} "
                f"({self._epochs} epochs of {self._steps} steps): increase `epochs` "
                "or shorten the cycles."
            )
        if not self._driven and self._cycle_ends[-1] < run_end:
            warnings.warn(
                f"The last of the {self.num_snapshots} cycles ends at step "
                f"{self._cycle_ends[-1]} but the run goes on until step {run_end}: "
                "the steps after the last snapshot are not in the ensemble.",
                stacklevel=2,
            )

    def on_train_batch_begin(self, batch, logs=None):
        if self._driven:
            t = self._epoch_start + batch + 1
            c = self._cycle_steps
            rate = (
                self._rate.original
                / 2.0
                * (math.cos(math.pi * ((t - 1) % c) / c) + 1.0)
            )
            # `self.model` also re-syncs the JAX training state, so that the new
            # value reaches the next step.
            self._rate.set(self.model.optimizer, rate)

    def on_train_batch_end(self, batch, logs=None):
        position = self._epoch_start + batch + 1
        for k, end in enumerate(self._cycle_ends, start=1):
            if end == position:
                self._save_snapshot(k)

    def on_train_end(self, logs=None):
        self._rate.end(self.model.optimizer)
        missing = self.num_snapshots - len(self._done)
        if missing:
            reasons = []
            if self._skipped:
                reasons.append(f"{len(self._skipped)} with non-finite weights")
            if missing > len(self._skipped):
                reasons.append(
                    f"{missing - len(self._skipped)} not reached (stopped early?)"
                )
            warnings.warn(
                f"Training ended with {missing} of {self.num_snapshots} snapshots not "
                f"taken: {', '.join(reasons)}.",
                stacklevel=2,
            )

    def _save_snapshot(self, index):
        model = self.model
        if not all(
            np.isfinite(w).all()
            for w in model.get_weights()
            if np.issubdtype(w.dtype, np.inexact)
        ):
            self._skipped.add(index)
            warnings.warn(
                f"SnapshotEnsemble: the weights at the end of cycle {index} are not "
                "finite (NaN or inf, e.g. after a NaN loss): snapshot "
                f"{index} is skipped, and `build_ensemble` uses the finite "
                "snapshots only. `keras.callbacks.TerminateOnNaN` stops such a run.",
                stacklevel=2,
            )
            return
        path = self.snapshot_path(index)
        # A hidden temporary file in `directory`, flushed to disk and moved to its
        # name with `os.replace`; one a killed process left behind is removed when
        # the callback next starts.
        with atomic_path(path) as temporary:
            model.save(temporary, overwrite=True)
        self._done.add(index)
        if self.keep is not None:
            for old in [k for k in self._done if k <= index - self.keep]:
                if os.path.exists(self.snapshot_path(old)):
                    os.remove(self.snapshot_path(old))
        if self.verbose:
            print(f"SnapshotEnsemble: saved {path}")

    def get_config(self):
        return {
            "directory": self.directory,
            "num_snapshots": self.num_snapshots,
            "keep": self.keep,
            "verbose": self.verbose,
        }


def _cycle_steps(total, num_snapshots):
    """`ceil(T / M)`, checking that `M` non-empty cycles fit in `T` steps."""
    cycle = -(-total // num_snapshots)
    if num_snapshots > total or (num_snapshots - 1) * cycle >= total:
        raise ValueError(
            f"`num_snapshots={num_snapshots}` cycles of ceil(T/M) = {cycle} steps do "
            f"not fit in the T = {total} steps of this run: the last cycle would be "
            "empty. Use fewer snapshots or more epochs/steps."
        )
    return cycle


def _schedule_cycle_ends(schedule, num_snapshots):
    if not hasattr(schedule, "cycle_end_steps"):
        raise ValueError(
            "SnapshotEnsemble needs an optimizer with a float learning rate (the "
            "callback then drives the cyclic cosine rate) or a cyclic schedule that "
            "reports its cycle ends (`cycle_end_steps`), such as "
            "`keras_trainplus.schedules.CyclicCosineDecay`. Received: "
            f"{type(schedule).__name__}"
        )
    ends = [int(e) for e in schedule.cycle_end_steps(num_snapshots)]
    if len(ends) != num_snapshots or any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(
            f"The schedule's cycle_end_steps({num_snapshots}) must return "
            f"{num_snapshots} increasing steps. Received: {ends}"
        )
    return ends


# keras_trainplus 0.1 wrote snapshots through `tempfile.mkstemp(prefix=".snapshot-",
# suffix=".keras")`: a process killed during a write left `.snapshot-XXXXXXXX.keras`
# (eight characters of mkstemp's alphabet), which no writer creates any more.
_LEGACY_PARTIAL = re.compile(r"\.snapshot-[a-z0-9_]{8}\.keras")


def _remove_legacy_partial_snapshots(directory):
    for entry in os.listdir(directory):
        if _LEGACY_PARTIAL.fullmatch(entry):
            os.remove(os.path.join(directory, entry))
