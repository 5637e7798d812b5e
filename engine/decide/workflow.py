"""Runs a category's workflow graph up to the point where someone outside the engine must act.

Internal steps (capture, enrich, create a case record) run at once. The run stops at a human review
step (the decision waits in the review queue) or at an external step (ticketing, pharmacovigilance
database). Either way the engine only *says* what is to be handed off: the run returns the
hand-offs as data (``HandOff``), and the service commits them with the record and delivers them
afterwards (``service/delivery/``). Nothing leaves the process from here.

A reviewer's outcome continues the workflow: ``run_workflow(..., start=workflow.after_review)``
runs the (possibly new) category's graph from the step the policy names for after a review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import JsonValue

from engine.categories import Category
from engine.decide.record import CaseRecord, HandOff, WorkflowTrace, handoff
from engine.policy.workflows import StepAction, Workflow


@dataclass(frozen=True)
class WorkflowContext:
    decision_id: str
    category: Category
    requires_human_review: bool
    received_at: datetime
    channel: str
    keywords_matched: tuple[str, ...]
    policy_revision: str
    cause: Literal["decision", "review"] = "decision"
    carried: tuple[tuple[str, Any], ...] = ()
    """Payload fields a continuation carries over from the decision (case id, the review)."""


@dataclass(frozen=True)
class WorkflowRun:
    """Where the run stopped, and what it hands off (at most one hand-off per run today)."""

    trace: WorkflowTrace
    handoffs: tuple[HandOff, ...]


def run_workflow(
    workflow: Workflow, ctx: WorkflowContext, *, start: str | None = None
) -> WorkflowRun:
    """Run ``workflow`` from ``start`` (default: its start step) until someone else must act."""
    completed: list[str] = []
    case: CaseRecord | None = None
    enriched: dict[str, Any] = {}
    due = (
        (ctx.received_at + timedelta(hours=workflow.sla_hours)).isoformat()
        if workflow.sla_hours
        else None
    )
    payload: dict[str, JsonValue] = {
        "decision_id": ctx.decision_id,
        "category": ctx.category.value,
        "policy_revision": ctx.policy_revision,
    }
    payload.update(dict(ctx.carried))

    def hand_off(kind: Literal["review", "dispatch"], step: str, target: str) -> HandOff:
        return handoff(
            decision_id=ctx.decision_id,
            cause=ctx.cause,
            kind=kind,
            step=step,
            target=target,
            category=ctx.category,
            policy_revision=ctx.policy_revision,
            payload=dict(payload),
        )

    name: str | None = start or workflow.start
    for _ in range(len(workflow.steps) + 1):  # graphs are acyclic (checked at load)
        if name is None:
            break
        step = workflow.steps[name]
        follow = (
            step.next_if_review if ctx.requires_human_review and step.next_if_review else step.next
        )
        if step.action is StepAction.CAPTURE:
            payload["channel"] = ctx.channel
            payload["received_at"] = ctx.received_at.isoformat()
        elif step.action is StepAction.ENRICH:
            enriched = {"keywords_matched": list(ctx.keywords_matched), "sla_due_at": due}
            payload.update(enriched)
        elif step.action is StepAction.CREATE_CASE_RECORD:
            case = CaseRecord(
                case_id=f"case-{ctx.decision_id}",
                opened_at=ctx.received_at.isoformat(),
                **enriched,
            )
            payload["case_id"] = case.case_id
        elif step.action is StepAction.QUEUE_HUMAN_REVIEW:
            if ctx.requires_human_review:
                assert step.queue is not None  # checked at load
                trace = WorkflowTrace(
                    name=ctx.category,
                    completed=completed,
                    next_step=name,
                    status="awaiting_review",
                    queue=step.queue,
                    sla_due_at=due,
                    case=case,
                )
                return WorkflowRun(trace, (hand_off("review", name, step.queue),))
        elif step.action is StepAction.EXTERNAL:
            assert step.integration is not None  # checked at load
            trace = WorkflowTrace(
                name=ctx.category,
                completed=completed,
                next_step=name,
                status="dispatched",
                sla_due_at=due,
                case=case,
            )
            return WorkflowRun(trace, (hand_off("dispatch", name, step.integration),))
        completed.append(name)
        name = follow
    trace = WorkflowTrace(
        name=ctx.category,
        completed=completed,
        next_step=None,
        status="completed",
        sla_due_at=due,
        case=case,
    )
    return WorkflowRun(trace, ())


def continue_after_review(
    workflow: Workflow,
    record: Mapping[str, Any],
    category: Category,
    *,
    reviewer: str,
    policy_revision: str,
) -> tuple[HandOff, ...]:
    """The hand-offs a reviewer's outcome implies for a stored decision record.

    The reviewed ``category``'s ``workflow`` (which may differ from the decision's) runs from its
    ``after_review`` step, as reviewed (no further review); what the decision's workflow collected
    (channel, receipt, keywords, case id) is carried over.
    """
    if workflow.after_review is None:
        return ()
    case = (record.get("workflow") or {}).get("case") or {}
    carried: dict[str, Any] = {
        "review": {"category": category.value, "reviewer": reviewer},
        "decided_category": record["category"],
    }
    if case.get("case_id"):
        carried["case_id"] = case["case_id"]
    run = run_workflow(
        workflow,
        WorkflowContext(
            decision_id=str(record["decision_id"]),
            category=category,
            requires_human_review=False,
            received_at=datetime.fromisoformat(str(record["created_at"])),
            channel=str(record["channel"]),
            keywords_matched=tuple(record.get("keywords_matched") or ()),
            policy_revision=policy_revision,
            cause="review",
            carried=tuple(carried.items()),
        ),
        start=workflow.after_review,
    )
    return run.handoffs
