"""The outcome of a search: every trial, the best ones, and a printable table."""

import collections
import numbers


def _format(value):
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{value:.4g}"


def _table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


class SearchResult:
    """The outcome of `keras_trainplus.tuning.search`.

    Read from the tuner's oracle once the search has finished: every trial with
    its status, score and hyperparameter values, and the best `num_best`
    completed trials by the search objective. `str(result)` (or `summary()`) is a
    table of the best trials, printed by `search` when `verbose` is on.

    Args:
        tuner: the `keras_tuner` tuner that ran the search.
        strategy: `"random"` or `"grid"`, for the summary's title.
        num_best: how many of the best trials to keep and show. Defaults to 5.

    Attributes:
        tuner: the tuner; `tuner.oracle` holds the full KerasTuner record.
        objective: the objective's name, e.g. `"val_accuracy"`.
        direction: `"max"` or `"min"`.
        trials: one dict per trial, in trial-id order, with keys `trial_id`,
            `status` (`"COMPLETED"`, `"FAILED"`, `"INVALID"`, ...), `score` (the
            best objective value over the trial's epochs, `None` if none) and
            `values` (its active hyperparameter values).
        best_trials: the best completed trials, best first, as the same dicts.
        best_hyperparameters: the best trial's `keras_tuner.HyperParameters`, or
            `None` when no trial completed.

    Example:

    ```python
    result = ktp.tuning.search(build, (x, y), (x_val, y_val), max_trials=10)
    print(result)
    model = result.build_best_model()
    ```
    """

    def __init__(self, tuner, strategy, num_best=5):
        self.tuner = tuner
        self.strategy = strategy
        oracle = tuner.oracle
        self.objective = oracle.objective.name
        self.direction = oracle.objective.direction
        self.trials = [
            self._record(trial)
            for trial in sorted(oracle.trials.values(), key=lambda t: t.trial_id)
        ]
        best = oracle.get_best_trials(num_best)
        self.best_trials = [self._record(trial) for trial in best]
        self.best_hyperparameters = best[0].hyperparameters if best else None
        self._names = [hp.name for hp in oracle.get_space().space]

    @staticmethod
    def _record(trial):
        score = None if trial.score is None else float(trial.score)
        return {
            "trial_id": trial.trial_id,
            "status": str(trial.status),
            "score": score,
            "values": dict(trial.hyperparameters.values),
        }

    def build_best_model(self):
        """Builds the best trial's model (untrained) with the tuner's hypermodel."""
        if self.best_hyperparameters is None:
            raise ValueError("No trial completed, so there is no best model to build.")
        return self.tuner.hypermodel.build(self.best_hyperparameters)

    def summary(self):
        """A plain-text table of the best trials, with the trial counts."""
        counts = collections.Counter(t["status"] for t in self.trials)
        statuses = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        title = (
            f"{self.strategy.capitalize()} search: {len(self.trials)} trials "
            f"({statuses or 'none run'}); objective {self.objective} "
            f"({self.direction})"
        )
        if not self.best_trials:
            return title + "\nNo trial completed."
        used = {name for t in self.best_trials for name in t["values"]}
        names = [n for n in dict.fromkeys(self._names) if n in used]
        header = ["rank", "trial", self.objective] + names
        rows = [
            [rank, t["trial_id"], _format(t["score"])]
            + [_format(t["values"].get(n)) for n in names]
            for rank, t in enumerate(self.best_trials, start=1)
        ]
        return f"{title}\nBest {len(rows)}:\n{_table(header, rows)}"

    def __str__(self):
        return self.summary()
