"""``switchboard diff``: replay under a git base revision and the working tree, report changes."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, Channel
from engine.cli import main
from engine.decide.engine import Engine
from engine.decide.request import DecisionRequest
from engine.decide.rules import RulesCache
from engine.policy.loader import load_policy
from engine.replay import ReplayCase, read_csv_cases
from eval.policy_diff.command import EXIT_LEAVES_SAFETY, DiffOptions, run_diff
from eval.policy_diff.replay import read_audit_cases, sample
from service.audit.sqlite import SQLiteAuditStore
from tests.conftest import Editor
from tests.engine.decide.test_head import _install_head

FAINTED = "I fainted twice after my second dose of the new tablets."
SEAL = "The seal was broken on the bottle of pills I received."
ORDER = "Where is my order? It has been a week."
REMOVED = ("      - fainted\n", "      - passed out\n")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(policy_copy: Path) -> Path:
    """A git repository holding policies/ and prompts/, committed as the base revision."""
    root = policy_copy.parent.parent
    _git(root, "init", "-q")
    _git(root, "add", "policies", "prompts")
    _git(root, "commit", "-q", "--no-gpg-sign", "-m", "base policy")
    return root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "cases.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerow(["fainted", FAINTED, "safety_compliance"])
        writer.writerow(["seal", SEAL, "safety_compliance"])
        writer.writerow(["order", ORDER, "service_action"])
    return path


def _lower_safety_keywords(repo: Path) -> None:
    rules = repo / "policies" / "contact-center" / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    for line in REMOVED:
        assert line in text
        text = text.replace(line, "", 1)
    rules.write_text(text, encoding="utf-8")


def _diff(repo: Path, data: Path, *extra: str) -> list[str]:
    return [
        "diff",
        "--base",
        "HEAD",
        "--policies",
        str(repo / "policies"),
        "--data",
        str(data),
        "--backend",
        "fake",
        *extra,
    ]


def test_lowering_safety_keywords_lists_the_messages_that_leave_safety(
    repo: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _lower_safety_keywords(repo)

    assert main(_diff(repo, data)) == 0

    report = capsys.readouterr().out
    assert (
        "1 message changes category, 1 leaves safety, 1 changes review status, "
        "1 changes workflow" in report
    )
    assert "### ⚠ LEAVES SAFETY (1)" in report
    leaving = report.split("### ⚠ LEAVES SAFETY (1)")[1]
    assert "`fainted` · chat · cases.csv · labelled safety_compliance" in leaving
    assert "I fainted twice after my second dose" in leaving
    # Both decision paths, side by side: the override fired in the base only.
    assert "| category | **safety_compliance** | **service_action** |" in leaving
    assert "| rules fired | `safety-severe-event` | — |" in leaving
    assert "`rule safety-severe-event: Serious outcomes" in leaving
    assert "| 1 | `model label: service_action p=0.900` | `model label: service_action" in leaving
    assert "removed keywords `passed out`, `fainted`" in report
    assert "safety recall: base 2/2 → head 1/2" in report
    assert "`seal`" not in report  # unchanged: not listed
    assert "`order`" not in report


def test_leaving_safety_can_fail_the_command(
    repo: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _lower_safety_keywords(repo)
    assert main(_diff(repo, data, "--fail-on-safety-exit")) == EXIT_LEAVES_SAFETY
    assert "1 leaves safety" in capsys.readouterr().err


def test_an_unchanged_policy_changes_nothing(
    repo: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.md"
    assert main(_diff(repo, data, "--out", str(out), "--fail-on-safety-exit")) == 0
    report = out.read_text(encoding="utf-8")
    assert "0 messages change category, 0 leave safety" in report
    assert "nothing (the files are identical)" in report
    assert "LEAVES SAFETY" not in report
    assert capsys.readouterr().out == ""


async def test_a_rules_only_change_asks_the_model_once_per_message(repo: Path, data: Path) -> None:
    _lower_safety_keywords(repo)
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    options = DiffOptions(base="HEAD", policies=repo / "policies", data=[data])
    result = await run_diff(options, backend)
    assert len(backend.calls) == 3
    assert {c.verdict_source for c in result.diffs[0].comparisons} == {"model"}


async def test_a_prompt_change_asks_the_model_under_each_revision(repo: Path, data: Path) -> None:
    template = repo / "prompts" / "triage.j2"
    template.write_text(
        template.read_text(encoding="utf-8").replace("exactly one word", "one word"),
        encoding="utf-8",
    )
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    options = DiffOptions(base="HEAD", policies=repo / "policies", data=[data])
    result = await run_diff(options, backend)
    assert len(backend.calls) == 6
    assert {c.verdict_source for c in result.diffs[0].comparisons} == {"model x2"}
    assert "prompt template `triage.j2` changed" in result.report


async def test_recorded_verdicts_are_replayed_without_the_model(repo: Path, tmp_path: Path) -> None:
    loaded = load_policy(repo / "policies" / "contact-center", repo / "prompts")
    recorder = FakeBackend(
        [Scripted.label(Category.INFORMATIONAL, 0.7), Scripted.label(Category.SERVICE_ACTION)]
    )
    engine = Engine.build(loaded, recorder, rules_cache=RulesCache())
    store = SQLiteAuditStore(tmp_path / "audit.db")
    for message in (FAINTED, ORDER):
        await store.append(await engine.decide(DecisionRequest(message, Channel.CHAT)))
    await store.close()
    _lower_safety_keywords(repo)

    silent = FakeBackend()  # no scripted verdicts: any call would be an error verdict
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    options = DiffOptions(base="HEAD", policies=repo / "policies", audit_db=db)
    result = await run_diff(options, silent)

    assert not silent.calls
    (diff,) = result.diffs
    assert [c.verdict_source for c in diff.comparisons] == ["recorded", "recorded"]
    assert [c.case.source for c in diff.comparisons] == ["audit", "audit"]
    assert "1 leaves safety" in result.report
    assert "`model label: informational p=0.700`" in result.report


async def test_a_replay_reads_one_tenants_decisions(repo: Path, tmp_path: Path) -> None:
    loaded = load_policy(repo / "policies" / "contact-center", repo / "prompts")
    engine = Engine.build(loaded, FakeBackend(), rules_cache=RulesCache())
    store = SQLiteAuditStore(tmp_path / "audit.db")
    for message, tenant in ((FAINTED, "acme"), (ORDER, "globex"), (ORDER, "acme")):
        record = await engine.decide(DecisionRequest(message, Channel.CHAT))
        await store.append(record, tenant=tenant, region="local")
    await store.close()
    db = str(tmp_path / "audit.db")
    acme = await read_audit_cases(db, "contact-center", 10, tenant="acme")
    assert [c.message for c in acme] == [FAINTED, ORDER]
    assert len(await read_audit_cases(db, "contact-center", 10)) == 3


def test_an_unknown_base_revision_is_reported(
    repo: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _diff(repo, data)
    args[2] = "no-such-branch"
    assert main(args) == 2
    assert "git rev-parse" in capsys.readouterr().err


def test_csv_cases_and_a_stable_sample(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("text,channel\nhello there,voice\nsecond,\n", encoding="utf-8")
    cases = read_csv_cases(path)
    assert [(c.case_id, c.channel, c.label) for c in cases] == [
        ("m-2", Channel.VOICE, None),
        ("m-3", Channel.CHAT, None),
    ]
    many = [ReplayCase(str(i), "x", Channel.CHAT, "s") for i in range(50)]
    picked = sample(many, 10)
    assert len(picked) == 10
    assert picked == sample(list(reversed(many)), 10)[::-1]


async def test_a_head_change_is_shown_from_hidden_states_not_recorded_verdicts(
    repo: Path, tmp_path: Path, edit_policy: Editor
) -> None:
    """Records hold no hidden state: a diff that changes the head asks the model once per
    message (or the cache), so it shows what the head moves; a second run costs no call."""
    head = _install_head(repo / "policies" / "contact-center", edit_policy)
    _git(repo, "add", "policies")
    _git(repo, "commit", "-qm", "with a head", "--no-gpg-sign")
    loaded = load_policy(repo / "policies" / "contact-center", repo / "prompts")
    recorder = FakeBackend(default=Scripted.label(Category.INFORMATIONAL, 0.7))
    engine = Engine.build(loaded, recorder, rules_cache=RulesCache())
    store = SQLiteAuditStore(tmp_path / "audit.db")
    for message in (ORDER, SEAL):
        await store.append(await engine.decide(DecisionRequest(message, Channel.CHAT)))
    await store.close()
    edit_policy("policy.yaml", lambda d: d.pop("head"))  # the change: back to label probabilities

    hidden = np.ones(head.dim, dtype=np.float32)
    verdict = Scripted(Scripted.label(Category.SERVICE_ACTION).probabilities, hidden_state=hidden)
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    options = DiffOptions(
        base="HEAD", policies=repo / "policies", audit_db=db, cache_dir=tmp_path / "hidden"
    )
    first = FakeBackend(default=verdict)
    result = await run_diff(options, first)
    assert len(first.calls) == 2
    (diff,) = result.diffs
    assert [c.verdict_source for c in diff.comparisons] == ["model", "model"]
    assert "probe head removed" in result.report
    assert {c.base.llm.method for c in diff.comparisons} == {"probe_head"}
    assert "probe_head" not in {c.head.llm.method for c in diff.comparisons}

    again = FakeBackend()  # nothing scripted: a call would give an error verdict
    result = await run_diff(options, again)
    assert not again.calls
    assert [c.verdict_source for c in result.diffs[0].comparisons] == ["cached", "cached"]
    assert "2 with their hidden state from the cache" in result.report
