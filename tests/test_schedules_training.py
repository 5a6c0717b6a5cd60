"""Every schedule drives `model.fit` in-graph and resumes after `model.save()`.

A one-weight linear model with input 1 and mean absolute error against a target far
below makes every gradient exactly 1, so after the steps `0 .. N - 1` SGD has moved
the weight by `-sum(lr(t))`: the weight checks the rate of every step, and the rate
read back from `optimizer.learning_rate` (the schedule at `optimizer.iterations`)
checks the step count.
"""

import functools

import keras
import numpy as np
import pytest

from keras_trainplus import schedules
from tests.helpers import schedules as helpers
from tests.helpers import tolerance
from tests.helpers.backend import BACKEND
from tests.helpers.backend import compile_modes

STEPS, MORE_STEPS = 13, 6

SCHEDULES = {
    "step": (
        lambda: schedules.StepDecay(0.1, [5, 10], decay_rate=0.5),
        functools.partial(
            helpers.step_decay, initial=0.1, boundary_steps=[5, 10], decay_rate=0.5
        ),
    ),
    "cosine": (
        lambda: schedules.CosineDecay(0.1, 16, 0.01),
        functools.partial(
            helpers.cosine_decay, initial=0.1, decay_steps=16, final=0.01
        ),
    ),
    "linear": (
        lambda: schedules.LinearDecay(0.1, 16),
        functools.partial(helpers.linear_decay, initial=0.1, decay_steps=16),
    ),
    "inverse_sqrt": (
        lambda: schedules.InverseSqrtDecay(0.1, timescale=4),
        functools.partial(helpers.inverse_sqrt_decay, initial=0.1, timescale=4),
    ),
    "warm_up": (
        lambda: schedules.WarmUp(schedules.CosineDecay(0.1, 10), 5, 0.01),
        functools.partial(
            helpers.warm_up,
            inner=functools.partial(helpers.cosine_decay, initial=0.1, decay_steps=10),
            warmup_steps=5,
            initial=0.01,
        ),
    ),
    "cyclic_cosine": (
        lambda: schedules.CyclicCosineDecay(0.1, 4, 0.001, cycle_mult=2.0),
        functools.partial(
            helpers.cyclic_cosine_decay,
            initial=0.1,
            cycle_steps=4,
            final=0.001,
            mult=2.0,
        ),
    ),
    "one_cycle": (
        lambda: schedules.OneCycle(0.1, 16, pct_start=0.25),
        functools.partial(
            helpers.one_cycle,
            max_lr=0.1,
            total_steps=16,
            pct_start=0.25,
            div_factor=25.0,
            final_div_factor=1e4,
            anneal="cos",
        ),
    ),
}


def _compiled_modes():
    if BACKEND in ("tensorflow", "jax"):
        return [kwargs for name, kwargs in compile_modes() if name == "xla"]
    return [kwargs for _, kwargs in compile_modes()]


def _model(schedule, compile_kwargs):
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule),
        loss="mae",
        **compile_kwargs,
    )
    return model


def _fit(model, steps):
    x = np.ones((steps, 1), "float32")
    model.fit(
        x, np.full((steps, 1), -1e3, "float32"), batch_size=1, epochs=1, verbose=0
    )


def _weight(model):
    return float(keras.ops.convert_to_numpy(model.layers[0].kernel)[0, 0])


@pytest.mark.smoke
@pytest.mark.parametrize("compile_kwargs", _compiled_modes())
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_fit_uses_the_schedule_and_resumes_after_save(name, compile_kwargs, tmp_path):
    make, closed_form = SCHEDULES[name]
    rates = np.array([closed_form(float(t)) for t in range(STEPS + MORE_STEPS + 1)])
    model = _model(make(), compile_kwargs)
    _fit(model, STEPS)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == STEPS
    helpers.assert_matches(float(model.optimizer.learning_rate), rates[STEPS])
    # Each step subtracts lr * 1 (the gradient of mae here is exactly 1): one
    # rounding per step at the scale of the sum, plus the rates' own `RTOL`.
    ulps = 8 + STEPS + MORE_STEPS
    tolerance.assert_close(_weight(model), -rates[:STEPS].sum(), ulps)

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    saved_schedule = restored.optimizer.get_config()["learning_rate"]
    assert (
        saved_schedule["registered_name"] == f"keras_trainplus>{type(make()).__name__}"
    )
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == STEPS
    helpers.assert_matches(float(restored.optimizer.learning_rate), rates[STEPS])

    _fit(restored, MORE_STEPS)
    total = STEPS + MORE_STEPS
    helpers.assert_matches(float(restored.optimizer.learning_rate), rates[total])
    tolerance.assert_close(_weight(restored), -rates[:total].sum(), ulps)
