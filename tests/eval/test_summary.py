"""The issue-11 targets computed from predictions: silent misses, automation, escalation causes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.engine import Engine
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.policy.loader import default_prompts_dir, load_catalog
from eval.dataset import LabelledCase
from eval.predictions import Prediction
from eval.summary import safety_outcomes
from tests.conftest import POLICIES

I = Category.INFORMATIONAL  # noqa: E741 - one-letter names keep the hand-worked table readable
S = Category.SERVICE_ACTION
A = Category.SAFETY_COMPLIANCE


def _row(label: Category, category: Category, review: bool) -> Prediction:
    return Prediction(
        id="x",
        source="own/x",
        channel=Channel.CHAT,
        label=label,
        model_status=VerdictStatus.OK,
        model_label=category,
        p_informational=None,
        p_service_action=None,
        p_safety_compliance=None,
        category=category,
        confidence=None,
        requires_human_review=review,
        degraded=False,
        keywords_matched="",
        rules_fired="",
        decision_path="",
        latency_ms=0.0,
        llm_ms=0.0,
        prompt_tokens=0,
        cached_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        input_redacted="",
    )


def test_silent_misses_and_automation_by_hand() -> None:
    rows = [
        _row(A, A, True),
        _row(A, S, True),  # missed, but a human reviews it: not silent
        _row(A, I, False),  # the silent miss
        _row(I, I, False),  # automated
        _row(I, I, True),  # right, but reviewed: not automated
        _row(S, A, True),  # false escalation
        _row(S, S, False),  # automated
    ]
    out = safety_outcomes(rows)
    assert out["silent_safety_misses"] == 1
    assert out["moved_out_of_safety"] == 2
    assert out["automation_rate"] == 2 / 4


ESCALATION = "threshold:safety_escalation"


def _decided(message: str, answer: Scripted) -> Prediction:
    loaded = load_catalog(POLICIES, default_prompts_dir(POLICIES))["contact-center"]
    engine = Engine.build(loaded, FakeBackend([answer]), rules_cache=RulesCache())
    record = asyncio.run(engine.decide(DecisionRequest(message)))
    case = LabelledCase("x", message, Category.INFORMATIONAL, "own/x", Channel.CHAT, "")
    return Prediction.from_record(case, record)


@pytest.mark.parametrize(
    ("message", "answer", "route"),
    [
        ("hives all over since the new cream", Scripted.label(A, 0.9), "model:label"),
        # informational on top, p(safety) 0.45 after calibration: over the escalation threshold
        ("can this cream cause hives?", Scripted({I: 0.5, S: 0.05, A: 0.45}), ESCALATION),
        ("took the syrup and then collapsed", Scripted.label(I, 0.98), "rule:safety-severe-event"),
        ("what time do you open on sunday?", Scripted.label(I, 0.98), ""),
    ],
)
def test_what_routed_a_decision_to_safety(message: str, answer: Scripted, route: str) -> None:
    assert _decided(message, answer).safety_route == route


def test_false_escalations_are_counted_by_what_routed_them() -> None:
    escalated = [
        replace(_row(S, A, True), safety_route="rule:safety-severe-event"),
        replace(_row(I, A, True), safety_route="threshold:safety_escalation"),
        replace(_row(I, A, True), safety_route="threshold:safety_escalation"),
        replace(_row(A, A, True), safety_route="model:label"),  # a report: not a false escalation
        _row(S, A, True),  # from a predictions file written before the column existed
    ]
    assert safety_outcomes(escalated)["false_escalation_causes"] == {
        "threshold:safety_escalation": 2,
        "rule:safety-severe-event": 1,
        "unknown": 1,
    }
