"""The one-cycle policy: warm up to a peak rate, then anneal far below the start."""

import keras
from keras import ops

from keras_trainplus import _validation
from keras_trainplus.schedules import _common


@keras.saving.register_keras_serializable(package=_validation.PACKAGE)
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Two-phase one-cycle schedule with PyTorch's `OneCycleLR` conventions.

    Smith & Topin 2018, "Super-Convergence" (arXiv:1708.07120), in the two-phase
    form of fastai and PyTorch. With `T = total_steps`, `p = pct_start`,
    `lr_max = max_learning_rate`, `lr_0 = lr_max / div_factor`,
    `lr_min = lr_0 / final_div_factor`, and the phase ends `e_1 = p T - 1`,
    `e_2 = T - 1` (PyTorch's indexing):

    ```
    t <= e_1:  lr(t) = anneal(lr_0, lr_max, t / e_1)
    t >  e_1:  lr(t) = anneal(lr_max, lr_min, (t - e_1) / (e_2 - e_1))
    anneal(a, b, x) = b + (a - b) (1 + cos(pi x)) / 2     (anneal="cos")
    anneal(a, b, x) = a + (b - a) x                       (anneal="linear")
    ```

    This equals `torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps=T,
    pct_start=p, div_factor, final_div_factor, anneal_strategy=anneal,
    three_phase=False)` at every step `0 <= t <= T - 1`. PyTorch raises past the
    last step; here the rate stays at `lr_min` from step `T - 1` on.

    Reference:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks
        Using Large Learning Rates", 2018 (arXiv:1708.07120).

    Args:
        max_learning_rate: float >= 0, the peak rate. Defaults to none (required).
        total_steps: integer > 1, the length of the cycle. Defaults to none
            (required).
        pct_start: float in (0, 1), the fraction of the cycle spent warming up; the
            warm-up must span more than one step (`pct_start * total_steps > 1`).
            Defaults to `0.25`.
        div_factor: float >= 1, `lr_max / lr_0`. Defaults to `25.0`.
        final_div_factor: float >= 1, `lr_0 / lr_min`. Defaults to `1e4`.
        anneal: `"cos"` or `"linear"`, the form of both phases. Defaults to `"cos"`.

    Example:

    >>> schedule = OneCycle(0.1, total_steps=101, pct_start=0.5)
    >>> [round(float(schedule(s)), 7) for s in (0, 49.5, 100)]
    [0.004, 0.1, 4e-07]
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.25,
        div_factor=25.0,
        final_div_factor=1e4,
        anneal="cos",
    ):
        super().__init__()
        self.max_learning_rate = _validation.check_number(
            "max_learning_rate", max_learning_rate, low=0
        )
        self.total_steps = _validation.check_number(
            "total_steps", total_steps, low=1, low_inclusive=False, integer=True
        )
        self.pct_start = _validation.check_number(
            "pct_start",
            pct_start,
            low=0,
            high=1,
            low_inclusive=False,
            high_inclusive=False,
        )
        if self.pct_start * self.total_steps <= 1.0:
            raise ValueError(
                f"Argument `pct_start` must be > 1 / total_steps = "
                f"{1.0 / self.total_steps!r} so that the warm-up spans more than one "
                f"step. Received: pct_start={pct_start!r}"
            )
        self.div_factor = _validation.check_number("div_factor", div_factor, low=1)
        self.final_div_factor = _validation.check_number(
            "final_div_factor", final_div_factor, low=1
        )
        self.anneal = _validation.check_choice("anneal", anneal, ("cos", "linear"))
        self.initial_learning_rate = self.max_learning_rate / self.div_factor
        self.min_learning_rate = self.initial_learning_rate / self.final_div_factor

    def __call__(self, step):
        last_step = float(self.total_steps - 1)
        step = ops.minimum(_common.as_step(step), last_step)
        warmup_end = self.pct_start * self.total_steps - 1.0
        # Phase 1 climbs by the elapsed fraction, phase 2 descends by the remaining
        # fraction, so that both add positive terms to their lower end.
        climbed = step / warmup_end
        remaining = (last_step - step) / (last_step - warmup_end)
        if self.anneal == "cos":
            # `(1 + cos(pi x)) / 2` evaluated as `sin(pi (1 - x) / 2) ** 2` (the same
            # number), which keeps float32 precise near `lr_min`.
            climbed = _common.cosine_fraction(climbed)
            remaining = _common.cosine_fraction(remaining)
        rise = (
            self.initial_learning_rate
            + (self.max_learning_rate - self.initial_learning_rate) * climbed
        )
        fall = (
            self.min_learning_rate
            + (self.max_learning_rate - self.min_learning_rate) * remaining
        )
        return ops.where(ops.less_equal(step, warmup_end), rise, fall)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal": self.anneal,
        }
