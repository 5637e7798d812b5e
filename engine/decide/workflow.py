"""Runs a category's workflow graph up to the point where someone outside the engine must act.

Internal steps (capture, enrich, create a case record) run at once. The run stops at a human review
step (the decision waits in the review queue) or at an external step (ticketing, pharmacovigilance
database), which is handed to an ``Integrations`` implementation. The engine ships a logging
implementation: the real ticketing and safety-database clients are external boundaries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.categories import Category
from engine.decide.record import CaseRecord, WorkflowTrace
from engine.policy.model import StepAction, Workflow


class Integrations(Protocol):
    """External systems a workflow hands work to."""

    def queue_for_review(self, queue: str, payload: Mapping[str, Any]) -> None: ...

    def dispatch(self, integration: str, step: str, payload: Mapping[str, Any]) -> None: ...


class _AsJson:
    """A log message that is its fields as JSON, encoded only if a handler formats the message
    (the service's JSON formatter writes ``fields`` and never does)."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields)


class LoggingIntegrations:
    """Stand-in for ticketing, CRM and pharmacovigilance clients: logs each hand-off as JSON."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("switchboard.integrations")

    def queue_for_review(self, queue: str, payload: Mapping[str, Any]) -> None:
        fields = {"event": "queued_for_review", "queue": queue, **payload}
        self._log.info("%s", _AsJson(fields), extra={"fields": fields})

    def dispatch(self, integration: str, step: str, payload: Mapping[str, Any]) -> None:
        fields = {"event": "dispatched", "integration": integration, "step": step, **payload}
        self._log.info("%s", _AsJson(fields), extra={"fields": fields})


class RecordingIntegrations:
    """Keeps every hand-off in memory (tests, offline evaluation and replay: no side effects)."""

    def __init__(self) -> None:
        self.reviews: list[tuple[str, dict[str, Any]]] = []
        self.dispatched: list[tuple[str, str, dict[str, Any]]] = []

    def queue_for_review(self, queue: str, payload: Mapping[str, Any]) -> None:
        self.reviews.append((queue, dict(payload)))

    def dispatch(self, integration: str, step: str, payload: Mapping[str, Any]) -> None:
        self.dispatched.append((integration, step, dict(payload)))


@dataclass(frozen=True)
class WorkflowContext:
    decision_id: str
    category: Category
    requires_human_review: bool
    received_at: datetime
    channel: str
    keywords_matched: tuple[str, ...]
    policy_revision: str


def run_workflow(
    workflow: Workflow, ctx: WorkflowContext, integrations: Integrations
) -> WorkflowTrace:
    completed: list[str] = []
    case: CaseRecord | None = None
    enriched: dict[str, Any] = {}
    due = (
        (ctx.received_at + timedelta(hours=workflow.sla_hours)).isoformat()
        if workflow.sla_hours
        else None
    )
    payload: dict[str, Any] = {
        "decision_id": ctx.decision_id,
        "category": ctx.category.value,
        "policy_revision": ctx.policy_revision,
    }
    name: str | None = workflow.start
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
                integrations.queue_for_review(step.queue, payload)
                return WorkflowTrace(
                    name=ctx.category,
                    completed=completed,
                    next_step=name,
                    status="awaiting_review",
                    queue=step.queue,
                    sla_due_at=due,
                    case=case,
                )
        elif step.action is StepAction.EXTERNAL:
            assert step.integration is not None  # checked at load
            integrations.dispatch(step.integration, name, payload)
            return WorkflowTrace(
                name=ctx.category,
                completed=completed,
                next_step=name,
                status="dispatched",
                sla_due_at=due,
                case=case,
            )
        completed.append(name)
        name = follow
    return WorkflowTrace(
        name=ctx.category,
        completed=completed,
        next_step=None,
        status="completed",
        sla_due_at=due,
        case=case,
    )
