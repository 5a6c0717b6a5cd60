"""One call that runs KerasTuner's random or grid search and summarises it."""

import os
import tempfile

import keras_tuner

from keras_trainplus._validation import check_choice
from keras_trainplus._validation import check_number
from keras_trainplus.tuning import _tuners
from keras_trainplus.tuning._result import SearchResult

STRATEGIES = ("random", "grid")


def _is_distributed_worker():
    # KerasTuner's own convention (keras_tuner.src.distribute.utils): a process
    # is in distributed mode when KERASTUNER_ORACLE_IP is set, and it is the chief
    # when its KERASTUNER_TUNER_ID contains "chief".
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get(
        "KERASTUNER_TUNER_ID", ""
    )


def search(
    build_model,
    train_data,
    validation_data=None,
    *,
    strategy="random",
    max_trials=10,
    objective="val_loss",
    epochs=1,
    batch_size=None,
    callbacks=None,
    seed=None,
    executions_per_trial=1,
    directory=None,
    project_name="search",
    overwrite=True,
    num_best=5,
    verbose=1,
):
    """Runs `keras_tuner.RandomSearch` or `keras_tuner.GridSearch` and summarises it.

    A thin front to KerasTuner: it builds the tuner (KerasTuner's own, with its
    TensorBoard hook run only when a `keras.callbacks.TensorBoard` is passed, as
    TensorFlow >= 2.20 no longer installs TensorBoard), calls `tuner.search` with
    the data, and returns a `SearchResult` (every trial, the best `num_best`, a
    printable table). Random search is the default: at an equal trial budget it
    tries many more distinct values of the few hyperparameters that matter than a
    grid does (Bergstra & Bengio 2012; `examples/random_vs_grid.py`). For grid
    search, give the helpers a `grid_size` so that their ranges are finite grids;
    KerasTuner otherwise picks 10 quantiles of each continuous range.

    Distributed mode is KerasTuner's own: run the same script on every machine
    with `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT` (the chief's address)
    and `KERASTUNER_TUNER_ID` (`"chief"` for the one process holding the oracle,
    a unique `"tuner0"`, `"tuner1"`, ... for each worker). The chief serves trials
    until the workers have run `max_trials` of them and then returns the
    summary; a worker returns `None` when the chief has no more trials for it.
    In that mode only the chief honours `overwrite` (workers must not delete
    files the chief has written when they share `directory`).

    Args:
        build_model: a function `hp -> compiled keras.Model` (or a
            `keras_tuner.HyperModel`), using the helpers of this module or any
            `hp.*` calls.
        train_data: `(x, y)` (or `(x, y, sample_weight)`) arrays, shuffled by
            `fit` every epoch, or anything `model.fit` takes as `x` (a
            `tf.data.Dataset`, a `keras.utils.PyDataset`), used in its own order.
        validation_data: what `model.fit` takes as `validation_data`; required when
            `objective` starts with `"val_"`. Defaults to `None`.
        strategy: `"random"` or `"grid"`. Defaults to `"random"`.
        max_trials: the number of trials, an integer >= 1; for grid search `None`
            runs the whole grid. Defaults to `10`.
        objective: the logged metric to optimize, its direction inferred by
            KerasTuner (`"val_accuracy"` is maximised, `"val_loss"` minimised), a
            `keras_tuner.Objective`, or a list of them. Defaults to `"val_loss"`.
        epochs: training epochs per trial, an integer >= 1. Defaults to `1`.
        batch_size: passed to `model.fit`. Defaults to `None` (Keras's 32).
        callbacks: Keras callbacks passed to every trial's `model.fit` (KerasTuner
            copies them per trial). Defaults to `None`.
        seed: the oracle's seed, which makes the sequence of sampled
            hyperparameters reproducible (not the models' initial weights; use
            `keras.utils.set_random_seed` for those). Defaults to `None`.
        executions_per_trial: models trained per trial (their scores averaged).
            Defaults to `1`.
        directory: where KerasTuner writes its trials and checkpoints. Defaults
            to `None`, a new temporary directory.
        project_name: the sub-directory of this search. Defaults to `"search"`.
        overwrite: start afresh instead of resuming a search found in
            `directory/project_name`. Defaults to `True`.
        num_best: how many best trials the summary shows. Defaults to `5`.
        verbose: 0 silent; 1 KerasTuner's per-trial report, Keras progress bars
            and the final summary printed; 2 the same with one line per epoch
            instead of progress bars. Defaults to `1`.

    Returns:
        A `SearchResult`, or `None` on a distributed worker.

    Example:

    ```python
    def build(hp):
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(ktp.tuning.dropout_rate(hp)),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(
            optimizer=ktp.tuning.optimizer(hp),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    result = ktp.tuning.search(
        build, (x, y), (x_val, y_val), objective="val_accuracy", max_trials=20
    )
    ```
    """
    if not callable(build_model) and not isinstance(
        build_model, keras_tuner.HyperModel
    ):
        raise ValueError(
            "Argument `build_model` must be a function hp -> keras.Model or a "
            f"keras_tuner.HyperModel. Received: build_model={build_model!r}"
        )
    check_choice("strategy", strategy, STRATEGIES)
    if max_trials is not None or strategy == "random":
        max_trials = check_number("max_trials", max_trials, 1, integer=True)
    epochs = check_number("epochs", epochs, 1, integer=True)
    executions_per_trial = check_number(
        "executions_per_trial", executions_per_trial, 1, integer=True
    )
    num_best = check_number("num_best", num_best, 1, integer=True)
    verbose = check_number("verbose", verbose, 0, 2, integer=True)
    objectives = objective if isinstance(objective, (list, tuple)) else [objective]
    names = [o if isinstance(o, str) else o.name for o in objectives]
    if validation_data is None and any(n.startswith("val_") for n in names):
        raise ValueError(
            f"Argument `validation_data` is required for objective={objective!r}. "
            "Received: validation_data=None"
        )
    if isinstance(train_data, (tuple, list)):
        if len(train_data) not in (2, 3):
            raise ValueError(
                "Argument `train_data` must be (x, y), (x, y, sample_weight) or a "
                f"data set. Received: a sequence of length {len(train_data)}"
            )
        data = dict(zip(("x", "y", "sample_weight"), train_data))
    else:
        # `fit` ignores `shuffle` for data sets and warns at every trial unless
        # it is off; the data set's own order (and shuffling) is what counts.
        data = {"x": train_data, "shuffle": False}
    if directory is None:
        directory = tempfile.mkdtemp(prefix="keras_trainplus_search_")
    worker = _is_distributed_worker()

    tuner_class = {"random": _tuners.RandomSearch, "grid": _tuners.GridSearch}[strategy]
    tuner = tuner_class(
        build_model,
        objective=objective,
        max_trials=max_trials,
        seed=seed,
        executions_per_trial=executions_per_trial,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite and not worker,
    )
    tuner.search(
        **data,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=list(callbacks or []),
        verbose=verbose,
    )
    if worker:
        if verbose:
            print(
                f"Worker {os.environ['KERASTUNER_TUNER_ID']} done; the chief "
                "holds the search results."
            )
        return None
    result = SearchResult(tuner, strategy, num_best=num_best)
    if verbose:
        print(result.summary())
    return result
