"""The shared replay: one verdict for both revisions when the prompt is the same, and the
differences a reviewer reads."""

from __future__ import annotations

from pathlib import Path

from engine.backends.fake import FakeBackend, Scripted
from engine.backends.readout import DEFAULT_READOUT, Readout
from engine.categories import Category, Channel
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.policy.loader import load_policy
from engine.replay import ReplayCase, Replayer, aligned
from tests.conftest import PROMPTS, Editor, probe_head

FAINTED = ReplayCase("fainted", "I fainted after my second dose.", Channel.CHAT, "pasted")


def _engines(policy_copy: Path, backend: FakeBackend) -> tuple[Engine, Engine]:
    cache = RulesCache()
    base = Engine.build(load_policy(policy_copy, PROMPTS), backend, rules_cache=cache)
    return base, base


def _without_fainted(edit: Editor) -> None:
    def drop(doc: dict[str, object]) -> None:
        groups = doc["keyword_groups"]
        assert isinstance(groups, dict)
        for group in groups.values():
            words = group.get("keywords", [])
            if "fainted" in words:
                words.remove("fainted")

    edit("rules.yaml", drop)


async def test_a_rules_change_shares_one_model_call_and_names_the_differences(
    policy_copy: Path, edit_policy: Editor
) -> None:
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    cache = RulesCache()
    base = Engine.build(load_policy(policy_copy, PROMPTS), backend, rules_cache=cache)
    _without_fainted(edit_policy)
    head = Engine.build(load_policy(policy_copy, PROMPTS), backend, rules_cache=cache)
    replayer = Replayer(base, head)

    comparison = await replayer.compare(FAINTED)

    assert comparison is not None
    assert len(backend.calls) == replayer.model_calls == 1
    assert comparison.verdict_source == "model"
    assert comparison.leaves_safety
    aspects = {d.aspect: (d.base, d.head) for d in comparison.differences()}
    assert aspects["category"] == ("safety_compliance", "service_action")
    assert aspects["rules fired"][1] == "—"
    assert aspects["keyword groups"] == ("severe_event", "—")
    assert "human review" in aspects
    assert "workflow next step" in aspects
    assert "confidence" in aspects
    # The model's step is the same on both sides: aligned on one row.
    rows = comparison.path_rows()
    assert rows[0][0] == rows[0][1]
    assert any(left is None or right is None for left, right in rows)


async def test_the_same_policy_differs_in_nothing(policy_copy: Path) -> None:
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    base, head = _engines(policy_copy, backend)
    comparison = await Replayer(base, head).compare(FAINTED)
    assert comparison is not None
    assert comparison.differences() == []
    assert not comparison.changed


async def test_an_empty_message_is_not_compared(policy_copy: Path) -> None:
    base, head = _engines(policy_copy, FakeBackend())
    blank = ReplayCase("blank", "  ", Channel.CHAT, "pasted")
    assert await Replayer(base, head).compare(blank) is None


def test_aligned_puts_shared_steps_on_one_row() -> None:
    assert aligned(["a", "b", "c"], ["a", "c", "d"]) == [
        ("a", "a"),
        ("b", None),
        ("c", "c"),
        (None, "d"),
    ]


async def test_a_head_with_its_own_readout_gets_its_own_model_call(
    policy_copy: Path, edit_policy: Editor
) -> None:
    """The prompt text is the same on both sides, but the head reads other hidden states: one
    shared verdict would hand it the base's (which it cannot read, and would silently skip)."""
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    cache = RulesCache()
    base = Engine.build(load_policy(policy_copy, PROMPTS), backend, rules_cache=cache)
    prompts = base.prompts
    readout = Readout.parse(["mean:9", "last:final"])
    head_file = probe_head(
        16, readout=readout, template_hash=prompts.template_hash, prefix_hash=prompts.prefix_hash
    )
    (policy_copy / "head.json").write_text(head_file.to_json(), encoding="utf-8")
    thresholds = {"informational": 0.5, "service_action": 0.5}
    thresholds |= {"safety_compliance": 0.3, "safety_escalation": 0.2}
    edit_policy(
        "policy.yaml", lambda d: d.update(head={"file": "head.json", "thresholds": thresholds})
    )
    head = Engine.build(load_policy(policy_copy, PROMPTS), backend, rules_cache=cache)
    replayer = Replayer(base, head)

    comparison = await replayer.compare(FAINTED)

    assert comparison is not None
    assert len(backend.calls) == replayer.model_calls == 2
    assert [p.readout for p in backend.calls] == [DEFAULT_READOUT, readout]
