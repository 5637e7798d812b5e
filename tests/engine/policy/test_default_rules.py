"""The live default policy's rules for decisions the model gave no verdict for (1.7.5, 1.7.6).

Without a verdict the fallback is service_action with review; a message naming a symptom, saying
what happened to someone, or carrying another report signal (`outage_report_signal`: other
languages, a swallowed product, a defect in other words) goes to the safety queue instead,
whatever ended the model call. With a verdict that group decides nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, VerdictStatus
from engine.decide.engine import Engine
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.policy.loader import load_policy
from tests.conftest import LIVE_POLICY, LIVE_PROMPTS

SAFETY, SERVICE = Category.SAFETY_COMPLIANCE, Category.SERVICE_ACTION
RULE = "safety-signal-without-verdict"

CASES = [
    ("hives after gummies. 4yo.", SAFETY),  # a symptom word, nothing else
    ("My husband has been using the patches for ten days and has vivid dreams.", SAFETY),
    ("mi hija de 3 años vomitó dos veces después del jarabe", SAFETY),
    ("吃了你们的药以后全身起了红疹", SAFETY),
    ("Γεια σας, πρήστηκαν τα χείλη μου μετά το χάπι.", SAFETY),
    ("my 2 year old got into the vitamin gummies, is that ok?", SAFETY),
    ("found a piece of blue plastic in the antacid bottle", SAFETY),
    ("Please cancel order 4471, I ordered the wrong size.", SERVICE),
    ("¿Cuánto cuesta el envío a Valencia?", SERVICE),
    ("What are your opening hours on Sunday?", SERVICE),
]


def _engine(answer: Scripted) -> Engine:
    loaded = load_policy(LIVE_POLICY, LIVE_PROMPTS)
    return Engine.build(loaded, FakeBackend(default=answer), rules_cache=RulesCache())


@pytest.mark.parametrize(
    "ended", [VerdictStatus.ERROR, VerdictStatus.TIMEOUT, VerdictStatus.INVALID, "skipped"]
)
@pytest.mark.parametrize(("message", "expected"), CASES)
def test_without_a_verdict_a_report_signal_goes_to_safety(
    ended: VerdictStatus | str, message: str, expected: Category
) -> None:
    if ended == "skipped":  # admission said rules-only: the model is not called at all
        engine = _engine(Scripted.label(SERVICE, 0.99))
        record = asyncio.run(engine.decide(DecisionRequest(message=message), skip_model="overload"))
    else:
        engine = _engine(Scripted(status=VerdictStatus(ended)))
        record = asyncio.run(engine.decide(DecisionRequest(message=message)))
    assert record.llm.status is not VerdictStatus.OK
    assert record.category is expected
    assert record.requires_human_review  # every decision without a verdict is reviewed
    assert (RULE in [r.id for r in record.rules_fired]) is (expected is SAFETY)


def test_a_verdict_keeps_the_rule_out() -> None:
    engine = _engine(Scripted.label(SERVICE, 0.97))
    record = asyncio.run(
        engine.decide(DecisionRequest(message="I have been charged twice, refund one please."))
    )
    assert record.llm.status is VerdictStatus.OK
    assert RULE not in [r.id for r in record.rules_fired]
    assert record.category is SERVICE


def test_the_outage_group_decides_nothing_when_the_model_answers() -> None:
    engine = _engine(Scripted.label(SERVICE, 0.97))
    record = asyncio.run(
        engine.decide(DecisionRequest(message="Pedí dos cajas por error, cancelen una por favor."))
    )
    assert "outage_report_signal" in record.keywords_matched
    assert record.rules_fired == []
    assert record.category is SERVICE
