"""Decisions under sub-intent answers: the record keeps each answer, the path names the one."""

from __future__ import annotations

import asyncio

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from engine.decide.engine import Engine
from engine.decide.record import DecisionRecord
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.policy.loader import LoadedPolicy, default_prompts_dir, load_catalog, load_policy
from tests.conftest import DEFAULT_POLICY, FIXTURES, PROMPTS

SUB_INTENTS = FIXTURES / "subintent" / "policies"  # a frozen copy of the variant
INFO, SAFETY = Category.INFORMATIONAL, Category.SAFETY_COMPLIANCE


@pytest.fixture(scope="module")
def variant() -> LoadedPolicy:
    return load_catalog(SUB_INTENTS, default_prompts_dir(SUB_INTENTS))["contact-center-subintent"]


def _decide(loaded: LoadedPolicy, answer: Scripted, message: str) -> DecisionRecord:
    engine = Engine.build(loaded, FakeBackend([answer]), rules_cache=RulesCache())
    return asyncio.run(engine.decide(DecisionRequest(message)))


def test_the_record_keeps_each_answer_and_the_label_is_their_sum(variant: LoadedPolicy) -> None:
    scripted = Scripted.answering(
        {"information": 0.05, "question": 0.15, "action": 0.1, "reaction": 0.3, "defect": 0.4}
    )
    record = _decide(variant, scripted, "The seal on my bottle was already open.")
    llm = record.llm
    assert llm.answers == pytest.approx(
        {"information": 0.05, "question": 0.15, "action": 0.1, "reaction": 0.3, "defect": 0.4}
    )
    assert llm.label is SAFETY
    assert llm.probabilities[SAFETY] == pytest.approx(0.7)
    assert llm.probabilities[INFO] == pytest.approx(0.2)
    path = [(s.stage, s.code, s.detail) for s in record.decision_path]
    assert path[0] == ("model", "label", "safety_compliance p=0.700")
    assert path[1] == ("model", "sub_intent", "defect p=0.400")


def test_sub_intents_can_outvote_the_single_most_likely_answer(variant: LoadedPolicy) -> None:
    # "action" is the single most likely answer, but the two informational answers together are
    # more likely: the category is what the sum says, its sub-intent the larger of its two.
    scripted = Scripted.answering(
        {"information": 0.25, "question": 0.2, "action": 0.35, "reaction": 0.1, "defect": 0.1}
    )
    record = _decide(variant, scripted, "What are your opening hours?")
    assert record.llm.label is INFO
    steps = record.decision_path
    assert ("sub_intent", "information p=0.250") in [(s.code, s.detail) for s in steps]


def test_one_answer_per_label_records_no_answers_and_no_sub_intent_step() -> None:
    loaded = load_policy(DEFAULT_POLICY, PROMPTS)
    record = _decide(loaded, Scripted.label(INFO, 0.9), "What are your opening hours?")
    assert record.llm.answers is None
    assert all(s.code != "sub_intent" for s in record.decision_path)
