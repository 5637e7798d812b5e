"""Temperature scaling, and the engine applying a policy's calibration before its thresholds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from engine.decide.calibration import apply_temperature, calibrate
from engine.decide.engine import Engine
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.policy.fitting import Calibration
from engine.policy.loader import load_policy
from tests.conftest import Editor

INFO, SERVICE, SAFETY = Category.INFORMATIONAL, Category.SERVICE_ACTION, Category.SAFETY_COMPLIANCE
RAW = {INFO: 0.5, SERVICE: 0.3, SAFETY: 0.2}


def test_temperature_one_changes_nothing() -> None:
    assert apply_temperature(RAW, 1.0) == pytest.approx(RAW)


def test_temperature_by_hand() -> None:
    # T = 0.5 squares the probabilities before renormalising.
    total = 0.25 + 0.09 + 0.04
    expected = {INFO: 0.25 / total, SERVICE: 0.09 / total, SAFETY: 0.04 / total}
    assert apply_temperature(RAW, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.5, 4.0])
def test_the_ranking_never_changes(temperature: float) -> None:
    scaled = apply_temperature(RAW, temperature)
    assert sorted(scaled, key=scaled.__getitem__) == sorted(RAW, key=RAW.__getitem__)
    assert math.isclose(sum(scaled.values()), 1.0)
    sharper = temperature < 1
    assert (scaled[INFO] > RAW[INFO]) is sharper


def test_zero_probability_stays_near_zero_and_bad_temperature_raises() -> None:
    assert apply_temperature({INFO: 1.0, SERVICE: 0.0}, 2.0)[SERVICE] < 1e-5
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(RAW, 0.0)
    assert calibrate(RAW, None) == RAW
    assert calibrate({}, None) == {}


def _calibrated_engine(edit_policy: Editor, policy_copy: Path, temperature: float) -> Engine:
    def change(doc: dict[str, Any]) -> None:
        doc["calibration"] = Calibration(
            temperature=temperature, model="m", fitted_on="dev", fitted_at="2025-01-01", n=10
        ).model_dump(mode="json")

    edit_policy("policy.yaml", change)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    backend = FakeBackend(default=Scripted({INFO: 0.5, SERVICE: 0.3, SAFETY: 0.2}))
    return Engine.build(loaded, backend, rules_cache=RulesCache())


async def test_engine_thresholds_read_calibrated_probabilities(
    edit_policy: Editor, policy_copy: Path
) -> None:
    # Raw 0.5 is below the 0.55 acceptance threshold; sharpened (T=0.5) it is 0.66: accepted.
    engine = _calibrated_engine(edit_policy, policy_copy, 0.5)
    record = await engine.decide(DecisionRequest(message="Do you ship to Canada?"))
    assert record.llm.probabilities == pytest.approx(RAW)  # the model's own numbers
    assert record.llm.confidence == pytest.approx(0.5)
    assert record.llm.calibrated is not None
    assert record.llm.calibrated[INFO] == pytest.approx(0.25 / 0.38)
    assert record.confidence == pytest.approx(0.25 / 0.38, abs=1e-6)
    assert record.category is INFO
    assert not record.requires_human_review
    assert "threshold:accepted" in [f"{s.stage}:{s.code}" for s in record.decision_path]


async def test_softening_can_raise_safety_to_the_escalation(
    edit_policy: Editor, policy_copy: Path
) -> None:
    # Raw p(safety) 0.2 is below the 0.25 escalation; softened (T=3) it is about 0.29.
    engine = _calibrated_engine(edit_policy, policy_copy, 3.0)
    record = await engine.decide(DecisionRequest(message="Do you ship to Canada?"))
    assert record.category is SAFETY
    assert record.requires_human_review
