"""The issue-11 targets computed from predictions: silent misses and the automation rate."""

from __future__ import annotations

from engine.categories import Category, Channel, VerdictStatus
from eval.predictions import Prediction
from eval.summary import safety_outcomes

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
