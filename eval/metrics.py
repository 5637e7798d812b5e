"""Decision-quality metrics, as plain functions over labels and confidences (no model, no I/O).

Definitions (docs/evaluation.md has the prose):

- precision/recall/F1 per category; a category nobody predicted has precision 0. Macro-F1
  averages the categories that occur in the labels or the predictions of the slice.
- safety recall: share of true ``safety_compliance`` messages decided as safety.
- safety false-escalation rate: share of true non-safety messages decided as safety.
- ECE: expected calibration error of the top-label confidence, 10 equal-width bins,
  ``sum_b n_b / n * |accuracy_b - mean confidence_b|``.
- A prediction of ``None`` (the model gave no label) is always wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.categories import CATEGORIES, Category

SAFETY = Category.SAFETY_COMPLIANCE
NONE = "none"
BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    accuracy: float
    confidence: float


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def classification(
    truth: Sequence[Category], predicted: Sequence[Category | None]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-category P/R/F1/support, safety rates and the confusion matrix."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted differ in length")
    n = len(truth)
    columns = [c.value for c in CATEGORIES] + ([NONE] if None in predicted else [])
    confusion = {t.value: dict.fromkeys(columns, 0) for t in CATEGORIES}
    for t, p in zip(truth, predicted, strict=True):
        confusion[t.value][p.value if p is not None else NONE] += 1
    per_category: dict[str, dict[str, float | int]] = {}
    f1s: list[float] = []
    for c in CATEGORIES:
        tp = confusion[c.value][c.value]
        support = sum(confusion[c.value].values())
        predicted_as = sum(confusion[t.value][c.value] for t in CATEGORIES)
        precision = tp / predicted_as if predicted_as else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_category[c.value] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
        if support or predicted_as:
            f1s.append(f1)
    correct = sum(confusion[c.value][c.value] for c in CATEGORIES)
    safety_total = sum(1 for t in truth if t is SAFETY)
    safety_hit = sum(
        1 for t, p in zip(truth, predicted, strict=True) if t is SAFETY and p is SAFETY
    )
    others = n - safety_total
    escalated = sum(
        1 for t, p in zip(truth, predicted, strict=True) if t is not SAFETY and p is SAFETY
    )
    return {
        "n": n,
        "accuracy": _rate(correct, n),
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "per_category": per_category,
        "safety_recall": _rate(safety_hit, safety_total),
        "safety_false_escalation_rate": _rate(escalated, others),
        "confusion_matrix": confusion,
    }


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS
) -> list[ReliabilityBin]:
    """Equal-width confidence bins over [0, 1]; the last bin includes 1.0."""
    out: list[ReliabilityBin] = []
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=float)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        out.append(
            ReliabilityBin(
                lower=b / bins,
                upper=(b + 1) / bins,
                count=count,
                accuracy=float(hit[mask].mean()) if count else 0.0,
                confidence=float(conf[mask].mean()) if count else 0.0,
            )
        )
    return out


def ece(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> float | None:
    """Expected calibration error; None for no data."""
    n = len(confidences)
    if n == 0:
        return None
    return float(
        sum(
            b.count / n * abs(b.accuracy - b.confidence)
            for b in reliability(confidences, correct, bins)
        )
    )


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """Latency-style percentiles (linear interpolation), keyed ``p50``...; empty for no data."""
    if not values:
        return {}
    arr = np.asarray(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}
