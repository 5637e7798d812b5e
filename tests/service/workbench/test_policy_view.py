"""The policy in words: every rule and keyword group, where it is written, in the order it
applies."""

from __future__ import annotations

from engine.policy.loader import load_policy
from engine.policy.rules import Condition
from service.workbench.policy_view import describe, view
from tests.conftest import DEFAULT_POLICY, PROMPTS


def test_the_view_holds_every_rule_in_order_with_its_line() -> None:
    loaded = load_policy(DEFAULT_POLICY, PROMPTS)
    shown = view(loaded)
    assert [r.id for r in shown.rules] == [
        r.id for _, r in sorted(enumerate(loaded.policy.rules), key=lambda p: (p[1].priority, p[0]))
    ]
    assert len(shown.rules) == len(loaded.policy.rules)
    severe = next(r for r in shown.rules if r.id == "safety-severe-event")
    assert severe.where.startswith("rules.yaml:")
    line = int(severe.where.split(":")[1])
    text = (DEFAULT_POLICY / "rules.yaml").read_text(encoding="utf-8").splitlines()
    assert "safety-severe-event" in text[line - 1]
    assert severe.when == ("a keyword of any of these groups matched: severe_event",)
    assert severe.then == "decide safety_compliance; send to human review"
    assert [t.name for t in shown.thresholds][:2] == ["informational", "service_action"]
    assert {g.name for g in shown.keyword_groups} == set(loaded.policy.keyword_groups)


def test_alternatives_and_probabilities_read_as_sentences() -> None:
    condition = Condition.model_validate(
        {
            "channel": ["email"],
            "probability_at_least": {"safety_compliance": 0.2},
            "any": [{"keywords_none": ["symptom"]}, {"confidence_below": 0.5}],
        }
    )
    assert describe(condition) == (
        "the channel is email",
        "the model's probability of safety_compliance is at least 0.2",
        "at least one of: (no keyword of these groups matched: symptom) | "
        "(the model's confidence is below 0.5)",
    )
