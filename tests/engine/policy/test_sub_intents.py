"""Sub-intent answers in a policy: the variant loads and builds; each mistake is located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.backends.fake import FakeBackend
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.errors import PolicyError
from engine.policy.loader import default_prompts_dir, load_catalog, load_policy
from tests.conftest import REPO, Editor

VARIANT = REPO / "eval" / "variants" / "subintent" / "policies"


def _sub_intents(*answers: str) -> list[dict[str, str]]:
    return [{"answer": a, "definition": f"Messages that mean {a}, for the test."} for a in answers]


def _problems(policy_dir: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(policy_dir, policy_dir.parent.parent / "prompts")
    return [str(p) for p in info.value.problems]


def test_the_variant_loads_and_builds_as_check_does() -> None:
    catalog = load_catalog(VARIANT, default_prompts_dir(VARIANT))
    loaded = catalog["contact-center-subintent"]
    engine = Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    answers = [(c.category.value, c.answer) for c in engine.prompts.choices]
    assert len(answers) > 3
    assert {category for category, _ in answers} == {
        "informational",
        "service_action",
        "safety_compliance",
    }


def _with_sub_intents(data: dict[str, Any], category: str, *answers: str) -> None:
    label = data["labels"][category]
    label.pop("answer", None)
    label["sub_intents"] = _sub_intents(*answers)


@pytest.mark.parametrize(
    ("answers", "expected", "where"),
    [
        (("question", "question"), "given twice", "labels.informational.sub_intents[1].answer"),
        (("question", "Question"), "given twice", "labels.informational.sub_intents[1].answer"),
        (("question", "action"), "given twice", "labels.service_action.answer"),
        (("question", "query"), "different letter", "labels.informational.sub_intents[1].answer"),
        (("question", "safety word"), "different letter", "labels.safety_compliance.answer"),
    ],
)
def test_answers_that_one_token_cannot_tell_apart_are_located(
    policy_copy: Path,
    edit_policy: Editor,
    answers: tuple[str, ...],
    expected: str,
    where: str,
) -> None:
    edit_policy("policy.yaml", lambda d: _with_sub_intents(d, "informational", *answers))
    problems = _problems(policy_copy)
    located = [p for p in problems if expected in p and "policy.yaml:" in p and where in p]
    assert located, problems


def test_a_label_gives_answer_or_sub_intents_not_both(
    policy_copy: Path, edit_policy: Editor
) -> None:
    def both(data: dict[str, Any]) -> None:
        data["labels"]["informational"]["sub_intents"] = _sub_intents("question", "information")

    edit_policy("policy.yaml", both)
    assert any("(labels.informational)" in p and "not both" in p for p in _problems(policy_copy)), (
        _problems(policy_copy)
    )


def test_a_label_without_any_answer_is_refused(policy_copy: Path, edit_policy: Editor) -> None:
    edit_policy("policy.yaml", lambda d: d["labels"]["service_action"].pop("answer"))
    assert any("(labels.service_action)" in p and "neither" in p for p in _problems(policy_copy))


def test_examples_of_a_label_with_sub_intents_name_one(
    policy_copy: Path, edit_policy: Editor
) -> None:
    def change(data: dict[str, Any]) -> None:
        _with_sub_intents(data, "informational", "information", "question")
        examples = data["prompt"]["examples"]
        for example in examples:
            if example["label"] == "informational":
                example["answer"] = "question"
        examples[0]["answer"] = "quiz"  # not one of informational's answers
        examples[1].pop("answer")

    edit_policy("policy.yaml", change)
    problems = _problems(policy_copy)
    assert any("(prompt.examples[0].answer)" in p and "'quiz'" in p for p in problems), problems
    assert any("(prompt.examples[1].label)" in p and "name the one" in p for p in problems)


def test_a_template_that_never_shows_a_sub_intent_answer_does_not_build(
    policy_copy: Path, edit_policy: Editor
) -> None:
    # The default template shows each label's single `answer`: sub-intents would be invisible.
    def change(data: dict[str, Any]) -> None:
        _with_sub_intents(data, "informational", "information", "question")
        for example in data["prompt"]["examples"]:
            if example["label"] == "informational":
                example["answer"] = "question"

    edit_policy("policy.yaml", change)
    loaded = load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    with pytest.raises(PolicyError) as info:
        Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    problems = [str(p) for p in info.value.problems]
    assert any("(prompt.template)" in p and "'question'" in p for p in problems), problems
