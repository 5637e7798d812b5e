"""Calibration of the model's label probabilities (temperature scaling), applied before rules.

Temperature scaling divides the log-probabilities by one number and renormalises: the ranking of
the labels is unchanged, only how sure the model sounds. The temperature is fitted offline
(``eval/calibrate.py``) and stored in the policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.backends.base import renormalise
from engine.categories import Category
from engine.policy.fitting import Calibration

# log(0) is -inf; a floor keeps a label the model gave no mass at (almost) no mass.
_FLOOR = 1e-12


def apply_temperature(
    probabilities: Mapping[Category, float], temperature: float
) -> dict[Category, float]:
    """``softmax(log p / temperature)`` over the given labels."""
    if not probabilities:
        return {}
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return renormalise(
        {c: math.log(max(p, _FLOOR)) / temperature for c, p in probabilities.items()}
    )


def calibrate(
    probabilities: Mapping[Category, float], calibration: Calibration | None
) -> dict[Category, float]:
    """The probabilities decisions use: calibrated when the policy says so, else unchanged."""
    if calibration is None or not probabilities:
        return dict(probabilities)
    return apply_temperature(probabilities, calibration.temperature)
