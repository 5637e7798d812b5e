"""Workflows: internal steps run, the run stops at human review or an external system, and says
what it hands off as data (nothing leaves the engine)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from engine.categories import Category
from engine.decide.workflow import WorkflowContext, run_workflow
from engine.policy.loader import load_policy
from engine.policy.model import Policy
from tests.conftest import DEFAULT_POLICY, PROMPTS

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY, PROMPTS).policy


def _ctx(category: Category, review: bool) -> WorkflowContext:
    return WorkflowContext(
        decision_id="d1",
        category=category,
        requires_human_review=review,
        received_at=RECEIVED,
        channel="chat",
        keywords_matched=("symptom",),
        policy_revision="rev",
    )


def test_safety_case_is_opened_and_waits_for_pharmacovigilance(policy: Policy) -> None:
    run = run_workflow(policy.workflows.safety_compliance, _ctx(Category.SAFETY_COMPLIANCE, True))
    trace = run.trace
    assert trace.completed == ["capture", "enrich", "open_case"]
    assert (trace.next_step, trace.status) == ("pv_review", "awaiting_review")
    assert trace.queue == "pharmacovigilance"
    assert trace.sla_due_at == "2026-01-03T03:04:05+00:00"
    assert trace.case is not None
    assert trace.case.case_id == "case-d1"
    [handoff] = run.handoffs
    assert (handoff.kind, handoff.step) == ("review", "pv_review")
    assert handoff.target == "pharmacovigilance"
    assert handoff.idempotency_key == "d1:pv_review"
    assert handoff.routing_key == "review.pharmacovigilance"
    assert handoff.cause == "decision"
    assert handoff.payload == {
        "decision_id": "d1",
        "category": "safety_compliance",
        "policy_revision": "rev",
        "channel": "chat",
        "received_at": RECEIVED.isoformat(),
        "keywords_matched": ["symptom"],
        "sla_due_at": "2026-01-03T03:04:05+00:00",
        "case_id": "case-d1",
    }


def test_confident_service_action_goes_straight_to_ticketing(policy: Policy) -> None:
    run = run_workflow(policy.workflows.service_action, _ctx(Category.SERVICE_ACTION, False))
    assert (run.trace.next_step, run.trace.status) == ("create_ticket", "dispatched")
    assert [(h.kind, h.target, h.step) for h in run.handoffs] == [
        ("dispatch", "ticketing", "create_ticket")
    ]
    assert run.handoffs[0].routing_key == "dispatch.ticketing"


def test_review_branch_is_taken_when_review_is_required(policy: Policy) -> None:
    run = run_workflow(policy.workflows.informational, _ctx(Category.INFORMATIONAL, True))
    assert (run.trace.next_step, run.trace.status) == ("agent_review", "awaiting_review")
    assert [h.target for h in run.handoffs] == ["agent_review"]
    assert run.trace.sla_due_at is None


def test_after_review_runs_from_the_step_the_policy_names(policy: Policy) -> None:
    workflow = policy.workflows.safety_compliance
    assert workflow.after_review == "report_to_safety_db"
    run = run_workflow(
        workflow, _ctx(Category.SAFETY_COMPLIANCE, False), start=workflow.after_review
    )
    assert run.trace.completed == []
    assert [(h.kind, h.step, h.target) for h in run.handoffs] == [
        ("dispatch", "report_to_safety_db", "pharmacovigilance_db")
    ]
