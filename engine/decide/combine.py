"""Combines the model's verdict, the fired rules and the thresholds into an outcome. Pure.

The order is fixed and visible in the decision path: the model's label (or the fallback when the
model could not be used), the acceptance threshold, the safety escalation, then each fired rule in
priority order. Safety wins: once anything routes to safety, nothing routes away, and a safety
outcome always goes to human review. A rules-engine failure fails closed to safety.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.backends.base import LabelVerdict
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.record import PathStep
from engine.policy.fallbacks import Fallback, Fallbacks
from engine.policy.model import Policy
from engine.policy.rules import Rule

SAFETY = Category.SAFETY_COMPLIANCE


@dataclass(frozen=True)
class Outcome:
    category: Category
    requires_human_review: bool
    degraded: bool
    path: tuple[PathStep, ...]


def _fallback_for(status: VerdictStatus, fallbacks: Fallbacks) -> tuple[Fallback, str]:
    if status is VerdictStatus.TIMEOUT:
        return fallbacks.timeout, "timeout"
    if status is VerdictStatus.INVALID:
        return fallbacks.invalid_output, "invalid_output"
    return fallbacks.model_error, "model_error"


def top_sub_intent(
    policy: Policy, label: Category, answers: Mapping[str, float]
) -> tuple[str, float] | None:
    """The most probable of ``label``'s sub-intent answers, None when it has only one answer."""
    own = policy.labels.spec(label).answers()
    scored = [(a, answers[a]) for a in own if a in answers]
    if len(own) < 2 or not scored:
        return None
    return max(scored, key=lambda item: item[1])


def combine(
    *,
    policy: Policy,
    channel: Channel,
    verdict: LabelVerdict,
    fired: Sequence[Rule],
    rules_error: str | None = None,
) -> Outcome:
    path: list[PathStep] = []
    degraded = verdict.status is not VerdictStatus.OK
    label = verdict.label

    if label is not None:
        p = verdict.probabilities
        confidence = p[label]
        threshold = policy.accept_threshold(label, channel)
        path.append(PathStep("model", "label", f"{label.value} p={confidence:.3f}"))
        sub_intent = top_sub_intent(policy, label, verdict.answers)
        if sub_intent is not None:
            answer, p_answer = sub_intent
            path.append(PathStep("model", "sub_intent", f"{answer} p={p_answer:.3f}"))
        p_safety = p.get(SAFETY, 0.0)
        if label is not SAFETY and p_safety >= policy.thresholds.safety_escalation:
            category, review = SAFETY, True
            path.append(
                PathStep(
                    "threshold",
                    "safety_escalation",
                    f"p(safety)={p_safety:.3f} >= {policy.thresholds.safety_escalation}",
                )
            )
        elif confidence >= threshold:
            category, review = label, False
            path.append(PathStep("threshold", "accepted", f"{confidence:.3f} >= {threshold}"))
        else:
            low = policy.fallbacks.low_confidence
            category = label if low.category == "keep" else Category(low.category)
            review = low.requires_human_review
            path.append(
                PathStep(
                    "threshold",
                    "below_threshold",
                    f"{confidence:.3f} < {threshold}: {category.value}"
                    + (", human review" if review else ""),
                )
            )
    else:
        fallback, kind = _fallback_for(verdict.status, policy.fallbacks)
        category, review = fallback.category, fallback.requires_human_review
        detail = f"model {verdict.status.value}" + (f": {verdict.error}" if verdict.error else "")
        path.append(PathStep("model", verdict.status.value, detail))
        path.append(
            PathStep(
                "fallback",
                kind,
                f"rules-only: {category.value}" + (", human review" if review else ""),
            )
        )

    if rules_error is not None:
        path.append(PathStep("rules", "engine_error", rules_error))
        path.append(PathStep("combine", "fail_closed", "rules unavailable: safety_compliance"))
        return Outcome(SAFETY, True, degraded, tuple(path))

    for rule in fired:
        path.append(PathStep("rule", rule.id, rule.reason))
        target = rule.then.category
        if target is not None and target is not category:
            if category is SAFETY:
                path.append(
                    PathStep("rule", "suppressed", f"{rule.id}: safety is never routed away")
                )
            else:
                path.append(PathStep("rule", "routed", f"{category.value} -> {target.value}"))
                category = target
        if rule.then.requires_human_review and not review:
            review = True
            path.append(PathStep("rule", "human_review", rule.id))

    if category is SAFETY and not review:
        review = True
    if category is SAFETY:
        path.append(PathStep("safety", "human_review", "mandatory for safety_compliance"))
    return Outcome(category, review, degraded, tuple(path))
