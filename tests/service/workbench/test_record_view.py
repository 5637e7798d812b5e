"""The decision record in words: every step the combiner can write reads as a sentence."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import pytest

from engine.backends.base import LabelVerdict
from engine.categories import Channel, VerdictStatus
from engine.decide.combine import combine
from engine.policy.loader import load_policy
from engine.policy.model import Policy
from service.workbench.record_view import (
    path_in_words,
    probability_bars,
    workflow_in_words,
)
from tests.conftest import DEFAULT_POLICY, PROMPTS
from tests.engine.decide.test_combine import DISTRIBUTIONS, RULES


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY, PROMPTS).policy


def test_every_path_step_the_combiner_writes_has_words(policy: Policy) -> None:
    seen: set[tuple[str, str]] = set()
    for status, dist, n, err in itertools.product(
        list(VerdictStatus), DISTRIBUTIONS, range(len(RULES) + 1), [False, True]
    ):
        for fired in itertools.permutations(RULES, n):
            out = combine(
                policy=policy,
                channel=Channel.CHAT,
                verdict=LabelVerdict(
                    status,
                    dist if status is VerdictStatus.OK else {},
                    error=None if status is VerdictStatus.OK else "boom",
                ),
                fired=list(fired),
                rules_error="engine crashed" if err else None,
            )
            lines = path_in_words([asdict(step) for step in out.path])
            for line in lines:
                assert not line.words.startswith(f"{line.stage}: "), line  # the raw fallback
                seen.add((line.stage, line.code if line.stage != "rule" else "*"))
    assert {
        ("model", "label"),
        ("threshold", "accepted"),
        ("threshold", "below_threshold"),
        ("threshold", "safety_escalation"),
        ("fallback", "timeout"),
        ("rule", "*"),
        ("rules", "engine_error"),
        ("combine", "fail_closed"),
        ("safety", "human_review"),
    } <= seen


def test_sentences_say_what_happened() -> None:
    steps = [
        {"stage": "model", "code": "label", "detail": "service_action p=0.412"},
        {
            "stage": "threshold",
            "code": "below_threshold",
            "detail": "0.412 < 0.55: service_action, human review",
        },
        {"stage": "rule", "code": "vip", "detail": "VIP customers get a person"},
        {"stage": "rule", "code": "routed", "detail": "service_action -> safety_compliance"},
        {"stage": "model", "code": "timeout", "detail": "model timeout: 2.0s"},
        {"stage": "future", "code": "thing", "detail": "new"},
    ]
    words = [line.words for line in path_in_words(steps)]
    assert words == [
        "The model read the message as service action (41% sure).",
        "41% is below the acceptance threshold of 55%: the low-confidence fallback decides "
        "service action, and a person reviews it.",
        "Rule vip fired: VIP customers get a person",
        "The rule moves it from service action to safety & compliance.",
        "No usable model answer: the model did not answer in time (2.0s).",
        "future: thing new",  # unknown steps are shown as recorded, never dropped
    ]


def test_bars_prefer_the_probabilities_thresholds_used() -> None:
    record = {
        "llm": {
            "label": "safety_compliance",
            "probabilities": {"informational": 0.5, "safety_compliance": 0.5},
            "calibrated": {"informational": 0.2, "safety_compliance": 0.8},
        }
    }
    bars, source = probability_bars(record)
    assert source == "calibrated"
    assert [(b.name, b.percent, b.chosen) for b in bars] == [
        ("safety & compliance", "80.0%", True),
        ("informational", "20.0%", False),
    ]
    assert probability_bars({"llm": {"probabilities": {}}}) == ([], "model")


def test_the_workflow_in_words() -> None:
    waiting = {
        "workflow": {
            "name": "safety_compliance",
            "completed": ["enrich", "create_case_record"],
            "next_step": "pv_review",
            "status": "awaiting_review",
            "queue": "pharmacovigilance",
            "sla_due_at": "2026-11-24T12:00:00+00:00",
        }
    }
    assert workflow_in_words(waiting) == (
        "The safety & compliance workflow ran enrich, create_case_record; it waits for a person "
        "in the pharmacovigilance queue at step pv_review, due 2026-11-24T12:00:00+00:00."
    )
    sent = {
        "workflow": {
            "name": "service_action",
            "completed": [],
            "next_step": "ticket",
            "status": "dispatched",
        }
    }
    assert workflow_in_words(sent) == (
        "The service action workflow ran no step yet; it handed the case on at step ticket."
    )
