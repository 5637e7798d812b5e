"""A stored decision in words a reviewer understands: the path, the rules, what happens next.

Pure functions over the stored record (JSON data) and the loaded policy; the case page renders
what they return. The decision path's codes come from ``engine.decide.combine``; a code this
module does not know is shown as it was recorded, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import Category
from engine.policy.model import Policy
from engine.policy.workflows import StepAction, Workflow

LABELS = {
    Category.INFORMATIONAL.value: "informational (a question to answer)",
    Category.SERVICE_ACTION.value: "service action (something to do for the customer)",
    Category.SAFETY_COMPLIANCE.value: "safety / compliance (a possible adverse event or defect)",
}


def label(category: str) -> str:
    return LABELS.get(category, category)


def _pair(detail: str, sep: str) -> tuple[str, str]:
    left, _, right = detail.partition(sep)
    return left.strip(), right.split(":")[0].strip()


def _percent(value: str) -> str:
    try:
        return f"{float(value):.0%}"
    except ValueError:
        return value


@dataclass(frozen=True)
class _Step:
    code: str
    detail: str
    channel: str


def _label_step(s: _Step) -> str:
    name, _, p = s.detail.partition(" p=")
    return f"The model read the message as {label(name)}, {_percent(p)} likely."


def _accepted(s: _Step) -> str:
    got, bar = _pair(s.detail, ">=")
    return (
        f"That is at or above the {_percent(bar)} confidence this policy asks for on the "
        f"{s.channel} channel ({_percent(got)}), so the answer was accepted."
    )


def _escalated(s: _Step) -> str:
    got, bar = _pair(s.detail.removeprefix("p(safety)="), ">=")
    return (
        f"The chance that this is a safety matter ({_percent(got)}) reached the escalation bar "
        f"({_percent(bar)}): it is treated as safety and a person must review it."
    )


def _below(s: _Step) -> str:
    got, bar = _pair(s.detail, "<")
    outcome = s.detail.partition(":")[2].strip()
    return (
        f"The model was not sure enough ({_percent(got)}, below the {_percent(bar)} bar): the "
        f"policy's low-confidence fallback applies ({outcome})."
    )


def _routed(s: _Step) -> str:
    before, _, after = s.detail.partition(" -> ")
    return f"A rule moved the category from {label(before)} to {label(after)}."


Words = Callable[[_Step], str]
# (stage, code) -> the sentence; then the stage alone (any code); else the step as recorded.
_BY_CODE: dict[tuple[str, str], Words] = {
    ("model", "label"): _label_step,
    ("threshold", "accepted"): _accepted,
    ("threshold", "safety_escalation"): _escalated,
    ("threshold", "below_threshold"): _below,
    ("rules", "engine_error"): lambda s: f"The rules engine failed ({s.detail}).",
    ("combine", "fail_closed"): lambda _: (
        "Because the rules could not run, the decision failed safe: safety, with review."
    ),
    ("rule", "suppressed"): lambda s: (
        f"Rule {s.detail.split(':')[0]} would have moved the case out of safety; safety is "
        "never routed away."
    ),
    ("rule", "routed"): _routed,
    ("rule", "human_review"): lambda s: f"Rule {s.detail} requires a person to review it.",
}
_BY_STAGE: dict[str, Words] = {
    "model": lambda s: (
        f"The model gave no usable answer ({s.detail or s.code}); the policy's rules-only "
        "fallback decided instead."
    ),
    "fallback": lambda s: f"Rules alone decided: {s.detail.removeprefix('rules-only: ')}.",
    "rule": lambda s: f"Rule {s.code} fired: {s.detail}",
    "safety": lambda _: "Every safety case is reviewed by a person before anything is reported.",
}


def step_in_words(step: dict[str, Any], record: dict[str, Any]) -> str:
    """One decision-path step as a sentence."""
    stage, code, detail = step.get("stage", ""), step.get("code", ""), step.get("detail", "")
    words = _BY_CODE.get((stage, code)) or _BY_STAGE.get(stage)
    if words is None:
        return f"{stage}: {code} {detail}".strip()
    return words(_Step(code, detail, str(record.get("channel", ""))))


@dataclass(frozen=True)
class Bar:
    """One label's probability, for the chart (``percent`` is 0-100)."""

    category: str
    probability: float
    chosen: bool

    @property
    def percent(self) -> float:
        return round(self.probability * 100, 1)


def probability_bars(record: dict[str, Any]) -> list[Bar]:
    """The probabilities the decision used: calibrated ones when the policy calibrates (or a
    probe head decides), else the model's own label probabilities."""
    llm = record.get("llm") or {}
    probabilities: dict[str, float] = llm.get("calibrated") or llm.get("probabilities") or {}
    return [
        Bar(category, float(p), category == llm.get("label"))
        for category, p in sorted(probabilities.items(), key=lambda kv: -kv[1])
    ]


@dataclass(frozen=True)
class NextStep:
    """What the workflow does once the reviewer decides ``category``."""

    category: str
    step: str | None
    description: str


def _step_words(workflow: Workflow, name: str | None) -> str:
    if name is None:
        return "The workflow ends with your review; nothing is handed on."
    step = workflow.steps[name]
    where = f" ({step.integration})" if step.action is StepAction.EXTERNAL else ""
    return f"{(step.description or name).rstrip('.')}{where}"


def next_steps(policy: Policy | None, decided: str) -> list[NextStep]:
    """For each category a reviewer can choose (the decided one first): the step it hands on to."""
    if policy is None:
        return []
    order = [decided, *(c.value for c in Category if c.value != decided)]
    out = []
    for value in order:
        workflow = policy.workflows.for_category(Category(value))
        out.append(
            NextStep(value, workflow.after_review, _step_words(workflow, workflow.after_review))
        )
    return out


def sla_hours(policies: list[Policy], category: str) -> float | None:
    """The category workflow's SLA; the strictest when the tenant's policies differ."""
    hours = [
        h
        for p in policies
        if (h := p.workflows.for_category(Category(category)).sla_hours) is not None
    ]
    return min(hours) if hours else None


def review_queues(policies: list[Policy]) -> list[str]:
    """Every queue a workflow step sends decisions to, the strictest SLA first (queues of
    workflows without an SLA last)."""
    sla: dict[str, float] = {}
    for policy in policies:
        for category in Category:
            workflow = policy.workflows.for_category(category)
            for step in workflow.steps.values():
                if step.action is StepAction.QUEUE_HUMAN_REVIEW and step.queue is not None:
                    hours = workflow.sla_hours if workflow.sla_hours is not None else float("inf")
                    sla[step.queue] = min(hours, sla.get(step.queue, hours))
    return sorted(sla, key=lambda queue: (sla[queue], queue))
