"""predictions.csv keeps each sub-intent answer's probability, and a replay gets them back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, Channel
from engine.decide.engine import Engine
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.policy.loader import default_prompts_dir, load_catalog
from eval.dataset import LabelledCase
from eval.predictions import Prediction, read_predictions, write_predictions
from eval.recorded import replay_row
from tests.conftest import FIXTURES

SUB_INTENTS = FIXTURES / "subintent" / "policies"  # a frozen copy of the variant


def test_sub_intent_answers_survive_the_file_and_the_replay(tmp_path: Path) -> None:
    loaded = load_catalog(SUB_INTENTS, default_prompts_dir(SUB_INTENTS))["contact-center-subintent"]
    answers = {"information": 0.1, "question": 0.5, "action": 0.1, "reaction": 0.2, "defect": 0.1}
    engine = Engine.build(
        loaded, FakeBackend([Scripted.answering(answers)]), rules_cache=RulesCache()
    )
    message = "Can this cream cause itching?"
    record = asyncio.run(engine.decide(DecisionRequest(message)))
    case = LabelledCase("q-1", message, Category.INFORMATIONAL, "own/test", Channel.CHAT, "")
    write_predictions(tmp_path / "p.csv", [Prediction.from_record(case, record)])
    (row,) = read_predictions(tmp_path / "p.csv")
    assert row.answer_probabilities == pytest.approx(answers)
    replayed = replay_row(engine, row)
    assert replayed.llm.answers == pytest.approx(answers)
    assert ("sub_intent", "question p=0.500") in [
        (s.code, s.detail) for s in replayed.decision_path
    ]
