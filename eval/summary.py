"""Turns predictions into the metrics document: final decision, model alone, per source."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.categories import Category, VerdictStatus
from engine.decide.calibration import calibrate
from engine.policy.fitting import Calibration
from eval.metrics import classification, ece, percentiles
from eval.predictions import Prediction


def top_confidence(row: Prediction, calibration: Calibration | None) -> float | None:
    """The model's top-label probability, raw (calibration None) or as the decision used it.

    When the probe head decided, its probabilities (already tempered) are the model's."""
    head = row.head_probabilities
    probs = head if head else calibrate(row.probabilities, calibration)
    return max(probs.values()) if probs and row.model_status is VerdictStatus.OK else None


def model_only(rows: Sequence[Prediction], calibration: Calibration | None) -> dict[str, Any]:
    """The model's own label and confidence, before rules and thresholds."""
    out = classification([r.label for r in rows], [r.model_label for r in rows])
    conf, hit = _confidence_pairs(rows, calibration)
    out["ece"] = ece(conf, hit)
    out["failure_rate"] = (
        sum(1 for r in rows if r.model_status is not VerdictStatus.OK) / len(rows) if rows else None
    )
    return out


def _confidence_pairs(
    rows: Sequence[Prediction], calibration: Calibration | None
) -> tuple[list[float], list[bool]]:
    conf: list[float] = []
    hit: list[bool] = []
    for r in rows:
        c = top_confidence(r, calibration)
        if c is not None:
            conf.append(c)
            hit.append(r.model_label is r.label)
    return conf, hit


def final_decision(rows: Sequence[Prediction], calibration: Calibration | None) -> dict[str, Any]:
    """The engine's decision after rules and thresholds, plus its operating costs."""
    out = classification([r.label for r in rows], [r.category for r in rows])
    conf, hit = _confidence_pairs(rows, calibration)
    n = len(rows)
    out["ece"] = ece(conf, hit)
    out["review_rate"] = sum(r.requires_human_review for r in rows) / n if n else None
    out["degraded_rate"] = sum(r.degraded for r in rows) / n if n else None
    out["timeout_count"] = sum(1 for r in rows if r.model_status is VerdictStatus.TIMEOUT)
    out.update(safety_outcomes(rows))
    out["rule_override_rate"] = (
        sum(1 for r in rows if r.model_label is not None and r.category is not r.model_label) / n
        if n
        else None
    )
    out["latency_ms"] = percentiles([r.latency_ms for r in rows])
    out["llm_latency_ms"] = percentiles([r.llm_ms for r in rows])
    out["mean_prompt_tokens"] = _mean([r.prompt_tokens for r in rows])
    out["mean_uncached_prompt_tokens"] = _mean([r.prompt_tokens - r.cached_tokens for r in rows])
    out["mean_output_tokens"] = _mean([r.output_tokens for r in rows])
    out["cost_per_decision_usd"] = _mean([r.cost_usd for r in rows])
    return out


def safety_outcomes(rows: Sequence[Prediction]) -> dict[str, Any]:
    """The issue-11 targets that classification metrics do not give.

    A *silent miss* is a safety message decided non-safety and not queued for review (the one
    error nobody would ever see); the *automation rate* is the share of non-safety messages
    decided correctly without review (the work taken off people).
    """
    safety = Category.SAFETY_COMPLIANCE
    others = [r for r in rows if r.label is not safety]
    silent = sum(
        1
        for r in rows
        if r.label is safety and r.category is not safety and not r.requires_human_review
    )
    automated = sum(1 for r in others if r.category is r.label and not r.requires_human_review)
    moved = sum(1 for r in rows if r.label is safety and r.category is not safety)
    causes = Counter(r.safety_route or "unknown" for r in others if r.category is safety)
    return {
        "silent_safety_misses": silent,
        "moved_out_of_safety": moved,
        "automation_rate": automated / len(others) if others else None,
        "false_escalation_causes": dict(causes.most_common()),
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 8) if values else None


def slices(rows: Sequence[Prediction]) -> dict[str, list[Prediction]]:
    """Rows per source, plus one slice per source family (``own`` for every ``own/<kind>``)."""
    groups: dict[str, list[Prediction]] = defaultdict(list)
    for r in rows:
        groups[r.source].append(r)
        if r.family != r.source:
            groups[r.family].append(r)
    return dict(sorted(groups.items()))


def outage_outcomes(rows: Sequence[Prediction]) -> dict[str, Any]:
    """What the rules and fallbacks alone do when no call gets a verdict (``replay_outage``):
    the share of safety messages that reach the safety queue, of the others that do too, and
    the reports neither routed to safety nor reviewed."""
    decided = final_decision(rows, None)
    return {
        "n": len(rows),
        "safety_queue_recall": decided["safety_recall"],
        "false_escalation_rate": decided["safety_false_escalation_rate"],
        "silent_safety_misses": decided["silent_safety_misses"],
        "review_rate": decided["review_rate"],
    }


def summarise(
    rows: Sequence[Prediction],
    calibration: Calibration | None,
    meta: dict[str, Any],
    outage: Sequence[Prediction] = (),
) -> dict[str, Any]:
    """The metrics.json document: final-decision metrics at the top level, model-only beside;
    with ``outage`` rows, what the same messages get when the model gives no verdict."""
    doc: dict[str, Any] = {"meta": meta}
    doc.update(final_decision(rows, calibration))
    doc["model_only"] = model_only(rows, None)
    if calibration is not None:
        doc["model_only_calibrated_ece"] = model_only(rows, calibration)["ece"]
    doc["per_source"] = {
        name: {**final_decision(group, calibration), "model_only": model_only(group, None)}
        for name, group in slices(rows).items()
    }
    if outage:
        doc["outage"] = outage_outcomes(outage)
    return doc


def label_counts(rows: Sequence[Prediction]) -> dict[str, int]:
    counts = {c.value: 0 for c in Category}
    for r in rows:
        counts[r.label.value] += 1
    return counts
