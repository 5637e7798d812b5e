"""The decision path in words (``service.workbench.explain``, the case page and the decision
explorer): every step the combiner can write reads as a sentence, none as the raw record."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import pytest

from engine.backends.base import LabelVerdict
from engine.categories import Channel, VerdictStatus
from engine.decide.combine import combine
from engine.policy.loader import load_policy
from engine.policy.model import Policy
from service.workbench.explain import step_in_words
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
            record = {"channel": "chat"}
            for step in out.path:
                words = step_in_words(asdict(step), record)
                assert not words.startswith(f"{step.stage}: "), (step, words)  # shown raw
                seen.add((step.stage, step.code if step.stage != "rule" else "*"))
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
