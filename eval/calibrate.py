"""Fits a temperature for the model's label probabilities on labelled predictions.

Minimises the negative log-likelihood of the true labels (the standard objective for temperature
scaling) over a log-spaced grid, then refines around the best point. ECE is reported before and
after; the fitted section is written as a YAML patch for the policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from engine.backends.base import top_label
from engine.categories import VerdictStatus
from engine.decide.calibration import apply_temperature
from engine.policy.fitting import Calibration
from eval.metrics import ece
from eval.predictions import Prediction

_FLOOR = 1e-12


@dataclass(frozen=True)
class CalibrationFit:
    calibration: Calibration
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float


def _usable(rows: Sequence[Prediction]) -> list[Prediction]:
    return [r for r in rows if r.model_status is VerdictStatus.OK and r.probabilities]


def nll(rows: Sequence[Prediction], temperature: float) -> float:
    """Mean negative log-likelihood of the true label after temperature scaling."""
    total = 0.0
    for r in rows:
        probs = apply_temperature(r.probabilities, temperature)
        total -= math.log(max(probs.get(r.label, 0.0), _FLOOR))
    return total / len(rows)


def ece_at(rows: Sequence[Prediction], temperature: float) -> float:
    conf: list[float] = []
    hit: list[bool] = []
    for r in rows:
        probs = apply_temperature(r.probabilities, temperature)
        top = top_label(probs)
        if top is None:
            continue
        conf.append(probs[top])
        hit.append(top is r.label)
    value = ece(conf, hit)
    return 0.0 if value is None else value


def fit_temperature(rows: Sequence[Prediction], *, model: str, fitted_on: str) -> CalibrationFit:
    """The NLL-minimising temperature in [0.05, 50]; raises ValueError on no usable rows."""
    usable = _usable(rows)
    if not usable:
        raise ValueError("no predictions with model probabilities to fit on")
    grid = np.exp(np.linspace(math.log(0.05), math.log(50.0), 121))
    losses = [nll(usable, float(t)) for t in grid]
    best = int(np.argmin(losses))
    low, high = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, len(grid) - 1)])
    for _ in range(40):  # golden-section refinement in the bracketing interval
        m1 = high - (high - low) / 1.618034
        m2 = low + (high - low) / 1.618034
        if nll(usable, m1) < nll(usable, m2):
            high = m2
        else:
            low = m1
    temperature = round((low + high) / 2, 4)
    before, after = ece_at(usable, 1.0), ece_at(usable, temperature)
    calibration = Calibration(
        temperature=temperature,
        model=model,
        fitted_on=fitted_on,
        fitted_at=date.today().isoformat(),
        n=len(usable),
        ece_before=round(before, 4),
        ece_after=round(after, 4),
    )
    return CalibrationFit(calibration, nll(usable, 1.0), nll(usable, temperature), before, after)
