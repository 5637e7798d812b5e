"""The combiner, exhaustively: statuses, label distributions, fired rules, channels."""

from __future__ import annotations

import itertools

import pytest

from engine.backends.base import LabelVerdict
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.combine import combine
from engine.policy.loader import load_policy
from engine.policy.model import ChannelAdjustment, Policy
from engine.policy.rules import Condition, Rule, RuleAction
from tests.conftest import DEFAULT_POLICY, PROMPTS

INFO, SERVICE, SAFETY = Category.INFORMATIONAL, Category.SERVICE_ACTION, Category.SAFETY_COMPLIANCE


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY, PROMPTS).policy


def _rule(rid: str, category: Category | None, review: bool = False) -> Rule:
    return Rule(
        id=rid,
        reason=f"test rule {rid} for the combiner",
        when=Condition(channel=[Channel.CHAT]),
        then=RuleAction(category=category, requires_human_review=review),
    )


RULES = [
    _rule("to-safety", SAFETY, True),
    _rule("to-info", INFO),
    _rule("to-service", SERVICE),
    _rule("review-only", None, True),
]
DISTRIBUTIONS = [
    {INFO: 0.9, SERVICE: 0.05, SAFETY: 0.05},
    {INFO: 0.5, SERVICE: 0.3, SAFETY: 0.2},
    {INFO: 0.4, SERVICE: 0.3, SAFETY: 0.3},
    {INFO: 0.05, SERVICE: 0.9, SAFETY: 0.05},
    {INFO: 0.3, SERVICE: 0.45, SAFETY: 0.25},
    {INFO: 0.1, SERVICE: 0.1, SAFETY: 0.8},
    {INFO: 0.35, SERVICE: 0.4, SAFETY: 0.25},
    {INFO: 0.45, SERVICE: 0.35, SAFETY: 0.2},
]
FIRED = [
    list(p)
    for n in range(len(RULES) + 1)
    for c in itertools.combinations(RULES, n)
    for p in itertools.permutations(c)
]


def _cases() -> list[tuple[VerdictStatus, dict[Category, float], list[Rule], Channel, bool]]:
    cases = []
    for status, dist, fired, channel, err in itertools.product(
        list(VerdictStatus), DISTRIBUTIONS, FIRED, list(Channel), [False, True]
    ):
        cases.append((status, dist, fired, channel, err))
    return cases


def test_invariants_hold_for_every_input(policy: Policy) -> None:
    cases = _cases()
    assert len(cases) > 10_000
    for status, dist, fired, channel, err in cases:
        probs = dist if status is VerdictStatus.OK else {}
        out = combine(
            policy=policy,
            channel=channel,
            verdict=LabelVerdict(
                status, probs, error=None if status is VerdictStatus.OK else "boom"
            ),
            fired=fired,
            rules_error="engine crashed" if err else None,
        )
        context = (status, dist, [r.id for r in fired], channel, err, out)
        # Safety wins and is always reviewed.
        if err or any(r.then.category is SAFETY for r in fired):
            assert out.category is SAFETY, context
        if out.category is SAFETY:
            assert out.requires_human_review, context
        if err:
            assert out.path[-1].code == "fail_closed", context
        # A failed model is always visible as degraded, with a fallback step.
        assert out.degraded is (status is not VerdictStatus.OK), context
        if status is not VerdictStatus.OK:
            assert any(s.stage == "fallback" for s in out.path), context
            assert out.requires_human_review, context  # every default fallback asks for review
        # Once the model stage says safety, no rule takes it away.
        model_safety = status is VerdictStatus.OK and (
            max(dist, key=dist.__getitem__) is SAFETY
            or dist[SAFETY] >= policy.thresholds.safety_escalation
        )
        if model_safety:
            assert out.category is SAFETY, context
        # Review rules always review.
        if any(r.then.requires_human_review for r in fired):
            assert out.requires_human_review, context
        # The path explains every fired rule, in order.
        assert [
            s.code for s in out.path if s.stage == "rule" and s.code in {r.id for r in RULES}
        ] == ([] if err else [r.id for r in fired]), context


def test_confident_label_is_accepted_without_review(policy: Policy) -> None:
    out = combine(
        policy=policy,
        channel=Channel.CHAT,
        verdict=LabelVerdict(VerdictStatus.OK, {INFO: 0.05, SERVICE: 0.9, SAFETY: 0.05}),
        fired=[],
    )
    assert (out.category, out.requires_human_review, out.degraded) == (SERVICE, False, False)
    assert [s.code for s in out.path] == ["label", "accepted"]


def test_low_confidence_keeps_label_and_asks_for_review(policy: Policy) -> None:
    out = combine(
        policy=policy,
        channel=Channel.CHAT,
        verdict=LabelVerdict(VerdictStatus.OK, {INFO: 0.45, SERVICE: 0.35, SAFETY: 0.2}),
        fired=[],
    )
    assert (out.category, out.requires_human_review) == (INFO, True)
    assert out.path[1].code == "below_threshold"


def test_safety_escalation_beats_a_confident_other_label(policy: Policy) -> None:
    out = combine(
        policy=policy,
        channel=Channel.CHAT,
        verdict=LabelVerdict(VerdictStatus.OK, {INFO: 0.7, SERVICE: 0.02, SAFETY: 0.28}),
        fired=[],
    )
    assert out.category is SAFETY
    assert out.path[1].code == "safety_escalation"


def test_rule_cannot_route_away_from_safety(policy: Policy) -> None:
    out = combine(
        policy=policy,
        channel=Channel.CHAT,
        verdict=LabelVerdict(VerdictStatus.OK, {INFO: 0.05, SERVICE: 0.05, SAFETY: 0.9}),
        fired=[RULES[1]],
    )
    assert out.category is SAFETY
    assert any(s.code == "suppressed" for s in out.path)


def test_timeout_uses_the_timeout_fallback(policy: Policy) -> None:
    out = combine(
        policy=policy,
        channel=Channel.CHAT,
        verdict=LabelVerdict(VerdictStatus.TIMEOUT, {}, error="no answer in 3s"),
        fired=[],
    )
    assert out.category is policy.fallbacks.timeout.category
    assert out.degraded
    assert out.requires_human_review
    assert [s.code for s in out.path] == ["timeout", "timeout"]


def test_a_channels_own_threshold_replaces_the_policys(policy: Policy) -> None:
    voice = ChannelAdjustment(thresholds={SERVICE: 0.99})
    adjusted = policy.model_copy(update={"channels": {**policy.channels, Channel.VOICE: voice}})
    verdict = LabelVerdict(VerdictStatus.OK, {INFO: 0.05, SERVICE: 0.9, SAFETY: 0.05})
    assert adjusted.accept_threshold(SERVICE, Channel.VOICE) == 0.99
    assert adjusted.accept_threshold(SERVICE, Channel.CHAT) == policy.thresholds.accept(SERVICE)
    voice_outcome = combine(policy=adjusted, channel=Channel.VOICE, verdict=verdict, fired=[])
    chat_outcome = combine(policy=adjusted, channel=Channel.CHAT, verdict=verdict, fired=[])
    assert voice_outcome.path[1].code == "below_threshold"
    assert chat_outcome.path[1].code == "accepted"
