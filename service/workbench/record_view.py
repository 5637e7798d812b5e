"""A stored decision record in words a reviewer or auditor reads: the decision path step by
step, the model's probabilities as bars, what the workflow did and does next.

Pure functions over the record as stored (JSON data), so a page shows exactly what the audit
store holds. A path step this module does not know is shown as recorded, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CATEGORY_NAMES = {
    "informational": "informational",
    "service_action": "service action",
    "safety_compliance": "safety & compliance",
}
_MODEL_FAILURES = {
    "error": "the model call failed",
    "timeout": "the model did not answer in time",
    "invalid": "the model's answer could not be read",
    "skipped": "the model was not asked (overload, open circuit or failed redaction)",
}
_FALLBACKS = {
    "timeout": "a model timeout",
    "invalid_output": "an unreadable model answer",
    "model_error": "a failed model call",
}


def category_name(value: str | None) -> str:
    return CATEGORY_NAMES.get(value or "", value or "none")


def _percent(text: str) -> str:
    try:
        return f"{float(text):.0%}"
    except ValueError:
        return text


@dataclass(frozen=True)
class PathLine:
    """One step of the decision path: the sentence, and the step as the record has it."""

    words: str
    stage: str
    code: str
    detail: str


def _model(code: str, detail: str) -> str | None:
    if code == "label":
        m = re.fullmatch(r"(\w+) p=([\d.]+)", detail)
        if m:
            label, p = m.groups()
            return f"The model read the message as {category_name(label)} ({_percent(p)} sure)."
        return None
    if code in _MODEL_FAILURES:
        why = detail.removeprefix(f"model {code}").lstrip(": ")
        return f"No usable model answer: {_MODEL_FAILURES[code]}" + (f" ({why})." if why else ".")
    return None


def _threshold(code: str, detail: str) -> str | None:
    if code == "accepted":
        m = re.fullmatch(r"([\d.]+) >= ([\d.]+)", detail)
        if m:
            p, t = m.groups()
            return (
                f"{_percent(p)} reaches the acceptance threshold of {_percent(t)}: "
                "the model's answer stands."
            )
    elif code == "below_threshold":
        m = re.fullmatch(r"([\d.]+) < ([\d.]+): (\w+)(, human review)?", detail)
        if m:
            p, t, category, review = m.groups()
            return (
                f"{_percent(p)} is below the acceptance threshold of {_percent(t)}: the "
                f"low-confidence fallback decides {category_name(category)}"
                + (", and a person reviews it." if review else ".")
            )
    elif code == "safety_escalation":
        m = re.fullmatch(r"p\(safety\)=([\d.]+) >= ([\d.]+)", detail)
        if m:
            p, t = m.groups()
            return (
                f"The model gave safety & compliance {_percent(p)}, at or above the escalation "
                f"threshold of {_percent(t)}: the message goes to safety & compliance, "
                "with a human review."
            )
    return None


def _rule(code: str, detail: str) -> str:
    if code == "suppressed":
        rule = detail.split(":", 1)[0]
        return (
            f"Rule {rule} would have moved the message elsewhere; a safety & compliance "
            "case is never routed away, so it stays."
        )
    if code == "routed":
        m = re.fullmatch(r"(\w+) -> (\w+)", detail)
        if m:
            before, after = m.groups()
            return f"The rule moves it from {category_name(before)} to {category_name(after)}."
    if code == "human_review":
        return f"Rule {detail} asks for a human review."
    return f"Rule {code} fired: {detail}"


def path_in_words(steps: list[dict[str, Any]]) -> list[PathLine]:
    """Each recorded path step with a sentence saying what it did."""
    lines = []
    for step in steps:
        stage, code = str(step.get("stage", "")), str(step.get("code", ""))
        detail = str(step.get("detail", ""))
        words: str | None = None
        if stage == "model":
            words = _model(code, detail)
        elif stage == "threshold":
            words = _threshold(code, detail)
        elif stage == "fallback":
            m = re.fullmatch(r"rules-only: (\w+)(, human review)?", detail)
            if m:
                category, review = m.groups()
                words = (
                    f"Fallback for {_FALLBACKS.get(code, code)}: the rules alone decide "
                    f"{category_name(category)}" + (", with a human review." if review else ".")
                )
        elif stage == "rule":
            words = _rule(code, detail)
        elif stage == "rules" and code == "engine_error":
            words = f"The rules engine failed ({detail})."
        elif stage == "combine" and code == "fail_closed":
            words = "With the rules unavailable, the decision fails closed to safety & compliance."
        elif stage == "safety" and code == "human_review":
            words = "Every safety & compliance case gets a human review."
        lines.append(PathLine(words or f"{stage}: {code} {detail}".strip(), stage, code, detail))
    return lines


@dataclass(frozen=True)
class Bar:
    category: str
    name: str
    share: float  # 0..1
    chosen: bool

    @property
    def percent(self) -> str:
        return f"{self.share:.1%}"


def probability_bars(record: dict[str, Any]) -> tuple[list[Bar], str]:
    """The probabilities thresholds used (calibrated, or the probe head's, when there are) as
    bars, highest first, and which ones they are."""
    llm = record.get("llm") or {}
    calibrated = llm.get("calibrated")
    source = "calibrated" if calibrated else "model"
    probabilities: dict[str, float] = calibrated or llm.get("probabilities") or {}
    chosen = llm.get("label")
    bars = [
        Bar(category, category_name(category), float(p), category == chosen)
        for category, p in sorted(probabilities.items(), key=lambda kv: -float(kv[1]))
    ]
    return bars, source


def workflow_in_words(record: dict[str, Any]) -> str:
    """What the category's workflow did and what happens next."""
    workflow = record.get("workflow") or {}
    done = workflow.get("completed") or []
    status = workflow.get("status", "")
    head = f"The {category_name(workflow.get('name'))} workflow"
    head += f" ran {', '.join(done)}" if done else " ran no step yet"
    nxt = workflow.get("next_step")
    due = workflow.get("sla_due_at")
    if status == "awaiting_review":
        tail = f"; it waits for a person in the {workflow.get('queue')} queue at step {nxt}"
        tail += f", due {due}." if due else "."
    elif status == "dispatched":
        tail = f"; it handed the case on at step {nxt}." if nxt else "; it handed the case on."
    elif status == "completed":
        tail = "; it is complete."
    else:
        tail = f"; status {status}, next step {nxt}."
    return head + tail
