"""Policy loading: the default policy is valid, and each kind of author mistake is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import PolicyError
from engine.policy.loader import SCHEMA_FILE, load_catalog, load_policy, schema_text
from tests.conftest import DEFAULT_POLICY, LIVE_POLICY, LIVE_PROMPTS, POLICIES, PROMPTS, Editor


def _problems(policy_dir: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(policy_dir, policy_dir.parent.parent / "prompts")
    return [str(p) for p in info.value.problems]


def test_default_policy_loads_with_a_stable_revision() -> None:
    first = load_policy(LIVE_POLICY, LIVE_PROMPTS)
    second = load_policy(LIVE_POLICY, LIVE_PROMPTS)
    assert first.id == "contact-center"
    assert len(first.revision) == 16
    assert first.revision == second.revision


def test_frozen_fixture_policy_is_valid() -> None:
    assert load_policy(DEFAULT_POLICY, PROMPTS).id == "contact-center"


def test_catalog_loads_every_policy() -> None:
    catalog = load_catalog(POLICIES, LIVE_PROMPTS)
    assert "contact-center" in catalog


def test_checked_in_schema_matches_the_models() -> None:
    assert (POLICIES / SCHEMA_FILE).read_text(encoding="utf-8") == schema_text()
    assert json.loads(schema_text())["title"] == "Policy"


def test_revision_changes_with_any_edit(policy_copy: Path, edit_policy: Editor) -> None:
    before = load_policy(policy_copy, policy_copy.parent.parent / "prompts").revision
    edit_policy("policy.yaml", lambda d: d["thresholds"].update(informational=0.6))
    after = load_policy(policy_copy, policy_copy.parent.parent / "prompts").revision
    assert before != after


def test_revision_changes_with_the_template(policy_copy: Path) -> None:
    prompts = policy_copy.parent.parent / "prompts"
    before = load_policy(policy_copy, prompts).revision
    template = prompts / "triage.j2"
    template.write_text(template.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert load_policy(policy_copy, prompts).revision != before


def _set(path: list[Any], value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("file", "path", "value", "expected"),
    [
        ("policy.yaml", ["thresholds", "informational"], 1.5, "greater than the maximum of 1"),
        ("policy.yaml", ["thresholds", "safety_compliance"], 0.9, "must never be harder"),
        ("policy.yaml", ["thresholds", "safety_escalation"], 0.5, "safety_escalation"),
        ("policy.yaml", ["version"], "one", "does not match"),
        ("policy.yaml", ["labels", "service_action", "answer"], "safe", "different letter"),
        ("policy.yaml", ["prompt", "template"], "missing.j2", "not found"),
        ("policy.yaml", ["fallbacks", "timeout", "category"], "urgent", "is not one of"),
        ("policy.yaml", ["thresholdz"], {}, "Additional properties"),
        ("rules.yaml", ["keyword_groups", "symptom", "patterns"], ["(unclosed"], "invalid regex"),
        ("policy.yaml", ["redaction", "phone_regions"], ["US", "UK"], "GB, not UK"),
        ("policy.yaml", ["redaction", "phone_regions"], ["usa"], "does not match"),
        ("rules.yaml", ["keyword_groups", "symptom", "keywords"], [], None),
        (
            "workflows.yaml",
            ["workflows", "service_action", "steps", "enrich", "next"],
            "nowhere",
            "edge to unknown step 'nowhere'",
        ),
        ("workflows.yaml", ["workflows", "service_action", "start"], "nowhere", "does not exist"),
        ("workflows.yaml", ["workflows", "safety_compliance", "sla_hours"], None, None),
    ],
)
def test_each_mistake_is_reported_with_its_file(
    policy_copy: Path,
    edit_policy: Editor,
    file: str,
    path: list[Any],
    value: Any,
    expected: str | None,
) -> None:
    edit_policy(file, _set(path, value))
    problems = _problems(policy_copy)
    assert problems, "the mistake was not reported"
    if expected is not None:
        matching = [p for p in problems if expected in p]
        assert matching, problems
        assert any(file in p for p in matching), problems


def test_unknown_keyword_group_in_a_rule(policy_copy: Path, edit_policy: Editor) -> None:
    edit_policy("rules.yaml", lambda d: d["rules"][0]["when"].update(keywords_any=["nope"]))
    assert any("unknown keyword group 'nope'" in p for p in _problems(policy_copy))


def test_duplicate_rule_id(policy_copy: Path, edit_policy: Editor) -> None:
    edit_policy("rules.yaml", lambda d: d["rules"].append(dict(d["rules"][0])))
    assert any("used twice" in p for p in _problems(policy_copy))


def test_removing_every_safety_override_is_refused(policy_copy: Path, edit_policy: Editor) -> None:
    def drop(d: dict[str, Any]) -> None:
        d["rules"] = [r for r in d["rules"] if r["then"].get("category") != "safety_compliance"]

    edit_policy("rules.yaml", drop)
    assert any("no safety keyword override" in p for p in _problems(policy_copy))


def test_unreachable_step_and_cycle(policy_copy: Path, edit_policy: Editor) -> None:
    def change(d: dict[str, Any]) -> None:
        steps = d["workflows"]["informational"]["steps"]
        steps["orphan"] = {"action": "capture"}
        steps["answer"]["next"] = "capture"

    edit_policy("workflows.yaml", change)
    problems = _problems(policy_copy)
    assert any("unreachable" in p and "orphan" in p for p in problems)
    assert any("cycle" in p for p in problems)


def test_safety_workflow_must_reach_human_review(policy_copy: Path, edit_policy: Editor) -> None:
    def change(d: dict[str, Any]) -> None:
        steps = d["workflows"]["safety_compliance"]["steps"]
        steps["open_case"]["next"] = "report_to_safety_db"
        del steps["pv_review"]

    edit_policy("workflows.yaml", change)
    assert any("human review step" in p for p in _problems(policy_copy))


@pytest.mark.parametrize(
    ("after_review", "expected"),
    [
        ("no_such_step", "after_review names unknown step 'no_such_step'"),
        ("open_case", "after_review 'open_case' must be the step a review step leads to"),
        (None, "the safety workflow must say which step follows the review"),
    ],
    ids=["unknown", "not-after-a-review", "missing-on-safety"],
)
def test_after_review_must_follow_a_review_step(
    policy_copy: Path, edit_policy: Editor, after_review: str | None, expected: str
) -> None:
    def change(d: dict[str, Any]) -> None:
        safety = d["workflows"]["safety_compliance"]
        if after_review is None:
            del safety["after_review"]
        else:
            safety["after_review"] = after_review

    edit_policy("workflows.yaml", change)
    assert any(expected in p for p in _problems(policy_copy))


def test_template_with_unknown_variable(policy_copy: Path) -> None:
    template = policy_copy.parent.parent / "prompts" / "triage.j2"
    template.write_text(
        template.read_text(encoding="utf-8").replace("{{ channel }}", "{{ chanel }}"),
        encoding="utf-8",
    )
    assert any("unknown variables ['chanel']" in p for p in _problems(policy_copy))


def test_broken_yaml_names_file_and_line(policy_copy: Path) -> None:
    (policy_copy / "rules.yaml").write_text("rules:\n  - id: x\n   bad indent: [\n", "utf-8")
    problems = _problems(policy_copy)
    assert any("rules.yaml:" in p and "invalid YAML" in p for p in problems)


def test_duplicate_key_inside_a_file(policy_copy: Path) -> None:
    path = policy_copy / "policy.yaml"
    path.write_text(path.read_text("utf-8") + "\nid: again\n", "utf-8")
    assert any("duplicate key 'id'" in p for p in _problems(policy_copy))


def test_key_defined_in_two_files(policy_copy: Path) -> None:
    (policy_copy / "extra.yaml").write_text("thresholds: {}\n", "utf-8")
    assert any("already defined" in p for p in _problems(policy_copy))


def test_empty_file_is_fine_and_non_utf8_is_not(policy_copy: Path) -> None:
    (policy_copy / "empty.yaml").write_text("", "utf-8")
    load_policy(policy_copy, policy_copy.parent.parent / "prompts")
    (policy_copy / "latin1.yaml").write_bytes("note: caf\xe9\n".encode("latin-1"))
    assert any("not UTF-8" in p for p in _problems(policy_copy))


def test_three_problems_at_once(policy_copy: Path, edit_policy: Editor) -> None:
    edit_policy(
        "workflows.yaml", _set(["workflows", "informational", "steps", "enrich", "next"], "nowhere")
    )
    edit_policy("policy.yaml", _set(["thresholds", "informational"], 2.0))
    edit_policy("rules.yaml", _set(["keyword_groups", "severe_event", "patterns"], ["[a-"]))
    problems = _problems(policy_copy)
    assert any("edge to unknown step" in p for p in problems)
    assert any("maximum of 1" in p for p in problems)
    assert any("invalid regex" in p for p in problems)
    located = next(p for p in problems if "maximum of 1" in p)
    assert "policy.yaml:" in located
    assert "thresholds.informational" in located


def test_unknown_keyword_group_in_model_input(policy_copy: Path, edit_policy: Editor) -> None:
    edit_policy(
        "policy.yaml",
        lambda d: d["prompt"].update(
            model_input={"head_chars": 600, "withhold_clauses": ["prompt_injection", "nope"]}
        ),
    )
    problems = _problems(policy_copy)
    located = [p for p in problems if "unknown keyword group 'nope'" in p]
    assert located, problems
    assert "model_input" in located[0]
    assert "policy.yaml" in located[0]
