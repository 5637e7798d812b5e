"""The playground: a candidate built as a reload builds, one model call per message, and only
directories and files it may read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, Channel
from engine.errors import PolicyError, ReplayError
from service.playground import Playground, pasted
from service.runtime import EngineHolder
from service.settings import Settings

FAINTED = "I fainted after my second dose of the new tablets."


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))


async def _playground(policy_copy: Path, backend: FakeBackend, **settings: object) -> Playground:
    values: dict[str, object] = {
        "policies": policy_copy.parent,
        "backend": "fake",
        "warm_up": False,
        **settings,
    }
    config = Settings(**values)  # type: ignore[arg-type]
    holder = EngineHolder(config, backend, redactor_factory=None)
    await holder.reload()
    return Playground(holder, config)


def _candidate(policy_copy: Path, name: str = "candidate") -> Path:
    """A copy of the live policies directory beside it, as an author would make one."""
    target = policy_copy.parent.parent / name
    shutil.copytree(policy_copy.parent, target)
    return target


def _drop_keyword(candidate: Path, word: str) -> None:
    rules = candidate / "contact-center" / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    assert f"      - {word}\n" in text
    rules.write_text(text.replace(f"      - {word}\n", "", 1), encoding="utf-8")


async def test_a_removed_safety_keyword_shows_up_for_one_model_call(
    policy_copy: Path, backend: FakeBackend
) -> None:
    playground = await _playground(policy_copy, backend)
    candidate = _candidate(policy_copy)
    _drop_keyword(candidate, "fainted")

    trial = await playground.compare(pasted(FAINTED, Channel.CHAT), str(candidate))

    assert trial.model_calls == len(backend.calls) == 1  # the prompt is the same: one verdict
    assert trial.comparison.verdict_source == "model"
    assert trial.comparison.leaves_safety
    assert trial.candidate.loaded.revision != trial.active.loaded.revision
    aspects = {d.aspect for d in trial.comparison.differences()}
    assert {"category", "rules fired", "keyword groups", "human review"} <= aspects
    assert "`keyword_groups.severe_event`: removed keywords `fainted`" in trial.changes


async def test_a_changed_prompt_asks_the_model_under_each_policy(
    policy_copy: Path, backend: FakeBackend
) -> None:
    playground = await _playground(policy_copy, backend)
    candidate = _candidate(policy_copy, "work/policies")
    prompts = candidate.parent / "prompts"  # prompts/ beside the candidate are its templates
    shutil.copytree(policy_copy.parent.parent / "prompts", prompts)
    template = prompts / "triage.j2"
    template.write_text(
        template.read_text(encoding="utf-8").replace("exactly one word", "one word"), "utf-8"
    )

    trial = await playground.compare(pasted("Where is my order?", Channel.CHAT), str(candidate))

    assert trial.model_calls == len(backend.calls) == 2
    assert trial.comparison.verdict_source == "model x2"


async def test_a_broken_candidate_is_refused_with_located_problems(
    policy_copy: Path, backend: FakeBackend
) -> None:
    playground = await _playground(policy_copy, backend)
    candidate = _candidate(policy_copy)
    policy = candidate / "contact-center" / "policy.yaml"
    policy.write_text(
        policy.read_text("utf-8").replace("informational: 0.55", "informational: 1.55"), "utf-8"
    )
    with pytest.raises(PolicyError) as caught:
        await playground.compare(pasted(FAINTED, Channel.CHAT), str(candidate))
    (problem,) = caught.value.problems
    assert problem.file.endswith("policy.yaml")
    assert "thresholds.informational" in str(problem)
    assert not backend.calls


async def test_a_candidate_outside_the_allowed_directories_is_refused(
    policy_copy: Path, backend: FakeBackend, tmp_path_factory: pytest.TempPathFactory
) -> None:
    playground = await _playground(policy_copy, backend)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(policy_copy.parent, elsewhere / "policies")
    for path in (str(elsewhere / "policies"), "../../etc", ""):
        with pytest.raises(PolicyError):
            await playground.compare(pasted(FAINTED, Channel.CHAT), path)
    allowed = await _playground(policy_copy, backend, candidate_roots=[elsewhere])
    trial = await allowed.compare(pasted(FAINTED, Channel.CHAT), str(elsewhere / "policies"))
    assert not trial.comparison.changed


async def test_labelled_files_leave_the_holdout_out(
    policy_copy: Path, backend: FakeBackend, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.csv").write_text(
        f"id,text,label\nf1,{FAINTED},safety_compliance\no1,Where is my order?,service_action\n",
        "utf-8",
    )
    (data / "holdout.csv").write_text("id,text,label\nh1,secret,informational\n", "utf-8")
    playground = await _playground(policy_copy, backend, playground_data=data)

    assert playground.labelled_files() == ["dev.csv"]
    assert [c.case_id for c in playground.labelled_cases("dev.csv", "order")] == ["o1"]
    case = playground.labelled_case("dev.csv", "f1")
    assert case.label is Category.SAFETY_COMPLIANCE
    for name in ("holdout.csv", "../data/dev.csv"):
        with pytest.raises(ReplayError):
            playground.labelled_cases(name)
