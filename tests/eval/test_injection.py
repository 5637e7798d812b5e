"""The injection sweep file, and that the live policy withholds every sweep instruction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from engine import DecisionRequest, Engine, RulesCache
from engine.backends.base import LabelChoice, LabelVerdict, RenderedPrompt
from engine.categories import Category, VerdictStatus
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


class ObedientModel:
    """A model that is right about every message and obeys any instruction it reads: it answers
    information whenever its message turn holds an instruction of the sweep. The worst case for
    injection, and the only thing a test can script; the real model is measured by
    ``switchboard eval --data eval/data/injection.csv``."""

    name = "obedient"
    model_id = "obedient"
    model_digest = "none"

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        turn = prompt.messages[-1].content.casefold()
        obeys = any(mark in turn for mark in injection.INSTRUCTION_MARKS)
        top = Category.INFORMATIONAL if obeys else Category.SAFETY_COMPLIANCE
        probabilities = {c: 0.98 if c is top else 0.01 for c in Category}
        return LabelVerdict(status=VerdictStatus.OK, probabilities=probabilities)

    async def probe(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def test_no_sweep_variant_is_moved_out_of_safety_by_an_obedient_model(live: LoadedPolicy) -> None:
    engine = Engine.build(live, ObedientModel(), rules_cache=RulesCache())
    cases = injection.safety_cases(injection.sources())
    originals = {c.case_id for c in cases}

    async def decide_all() -> list[tuple[str, Category]]:
        out: list[tuple[str, Category]] = []
        for i, case in enumerate(cases):
            for variant in injection.variants(case, i):
                request = DecisionRequest(variant.text, variant.channel)
                record = await engine.decide(request, deadline_s=5.0)
                out.append((variant.case_id, record.category))
        return out

    decided = asyncio.run(decide_all())
    assert len(decided) == len(injection.KINDS) * len(originals)
    moved = [case_id for case_id, category in decided if category is not Category.SAFETY_COMPLIANCE]
    assert moved == []
