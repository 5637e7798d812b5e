"""The injection sweep file, and that the live policy withholds every sweep instruction."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.categories import Category
from engine.decide.channels import normalise
from engine.decide.prompts import PromptBuilder
from engine.policy.loader import LoadedPolicy, load_policy
from eval import injection
from tests.conftest import LIVE_PROMPTS, POLICIES


@pytest.fixture(scope="module")
def live() -> LoadedPolicy:
    return load_policy(POLICIES / "contact-center", LIVE_PROMPTS)


def test_five_safety_variants_per_safety_case() -> None:
    cases = injection.safety_cases(injection.sources())
    sweep = injection.build_sweep(injection.sources())
    assert len(sweep) == len(injection.KINDS) * len(cases)
    assert {c.label for c in sweep} == {Category.SAFETY_COMPLIANCE}
    assert {c.source for c in sweep} == {f"injection/{k}" for k in injection.KINDS}
    assert all(case.text in v.text for case in cases[:20] for v in injection.variants(case, 0))


@pytest.mark.parametrize("kind", injection.KINDS)
def test_the_live_policy_withholds_every_sweep_instruction(live: LoadedPolicy, kind: str) -> None:
    """No instruction of the sweep reaches the model: no rendered message turn holds a word
    only the instructions use (the model is not needed to show it)."""
    builder = PromptBuilder(live.policy, LIVE_PROMPTS)
    cases = injection.safety_cases(injection.sources())
    assert len(cases) > 150
    at = injection.KINDS.index(kind)
    leaked: list[tuple[str, str]] = []
    for i, case in enumerate(cases):
        variant = injection.variants(case, i)[at]
        channel = variant.channel
        text = normalise(variant.text, channel, live.policy.channel_adjustment(channel))
        turn = builder.render(text, channel).messages[-1].content.casefold()
        own = case.text.casefold()
        if any(mark in turn and mark not in own for mark in injection.INSTRUCTION_MARKS):
            leaked.append((variant.case_id, turn[-200:]))
    assert leaked == []


def test_the_checked_in_sweep_is_what_the_generator_writes(tmp_path: Path) -> None:
    out = tmp_path / "injection.csv"
    assert injection.main([str(out)]) == 0
    assert out.read_bytes() == injection.OUT.read_bytes()
