"""Shared output for benchmarks: percentiles, one JSON line, an aligned table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50) * scale, digits),
        "p90": round(percentile(values, 90) * scale, digits),
        "p99": round(percentile(values, 99) * scale, digits),
        "mean": round(statistics.fmean(values) * scale, digits) if values else float("nan"),
        "n": len(values),
    }


def emit(name: str, results: Mapping[str, Any], rows: Sequence[Sequence[Any]]) -> None:
    print(json.dumps({"bench": name, **results}, sort_keys=True))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for j, row in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print()
