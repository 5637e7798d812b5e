"""Workflows: internal steps run, the run stops at human review or an external system."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from engine.categories import Category
from engine.decide.workflow import RecordingIntegrations, WorkflowContext, run_workflow
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
    sink = RecordingIntegrations()
    trace = run_workflow(
        policy.workflows.safety_compliance, _ctx(Category.SAFETY_COMPLIANCE, True), sink
    )
    assert trace.completed == ["capture", "enrich", "open_case"]
    assert (trace.next_step, trace.status) == ("pv_review", "awaiting_review")
    assert trace.queue == "pharmacovigilance"
    assert trace.sla_due_at == "2026-01-03T03:04:05+00:00"
    assert trace.case is not None
    assert trace.case.case_id == "case-d1"
    assert sink.reviews == [
        (
            "pharmacovigilance",
            {
                "decision_id": "d1",
                "category": "safety_compliance",
                "policy_revision": "rev",
                "channel": "chat",
                "received_at": RECEIVED.isoformat(),
                "keywords_matched": ["symptom"],
                "sla_due_at": "2026-01-03T03:04:05+00:00",
                "case_id": "case-d1",
            },
        )
    ]
    assert sink.dispatched == []


def test_confident_service_action_goes_straight_to_ticketing(policy: Policy) -> None:
    sink = RecordingIntegrations()
    trace = run_workflow(
        policy.workflows.service_action, _ctx(Category.SERVICE_ACTION, False), sink
    )
    assert (trace.next_step, trace.status) == ("create_ticket", "dispatched")
    assert [d[:2] for d in sink.dispatched] == [("ticketing", "create_ticket")]
    assert sink.reviews == []


def test_review_branch_is_taken_when_review_is_required(policy: Policy) -> None:
    sink = RecordingIntegrations()
    trace = run_workflow(policy.workflows.informational, _ctx(Category.INFORMATIONAL, True), sink)
    assert (trace.next_step, trace.status) == ("agent_review", "awaiting_review")
    assert sink.reviews[0][0] == "agent_review"
    assert trace.sla_due_at is None
