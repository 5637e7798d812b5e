"""Replays messages under two policy revisions and compares the decisions, for policy reviews.

Each message is prepared by both engines (channel normalisation, keyword groups) and its prompt is
rendered by both. When the two prompts are identical, one verdict serves both sides: the label
probabilities recorded in the audit store when there are any, otherwise one model call. Only when
the prompt itself changed is the model asked twice. The verdict is the only input the two sides
could disagree on by chance, so a difference in the report is always caused by the policy change.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from engine import (
    AuditStoreError,
    Category,
    Channel,
    DecisionRecord,
    DecisionRequest,
    Engine,
    MessageRejectedError,
    ReplayError,
    VerdictStatus,
)
from engine.backends.base import LabelVerdict, RenderedPrompt
from eval.hidden_cache import CACHED, HiddenStateCache

SAFETY = Category.SAFETY_COMPLIANCE


@dataclass(frozen=True)
class ReplayCase:
    """One message to decide under both revisions, with what is known about it."""

    case_id: str
    message: str
    channel: Channel
    source: str
    label: Category | None = None
    recorded: LabelVerdict | None = None


# -- where messages come from ------------------------------------------------------------------


def read_csv_cases(path: Path) -> list[ReplayCase]:
    """A labelled CSV: ``text`` (required), ``id``, ``label``, ``channel`` (optional)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc
    if rows and "text" not in rows[0]:
        raise ReplayError(f"{path} has no 'text' column; expected id,text,label[,channel]")
    cases = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            label = Category(row["label"]) if row.get("label") else None
            channel = Channel(row["channel"]) if row.get("channel") else Channel.CHAT
        except ValueError as exc:
            raise ReplayError(f"{path}:{i}: {exc}") from exc
        cases.append(
            ReplayCase(
                case_id=row.get("id") or f"{path.stem}-{i}",
                message=row["text"] or "",
                channel=channel,
                source=path.name,
                label=label,
            )
        )
    return cases


async def read_audit_cases(
    db: str, policy_id: str, limit: int, *, tenant: str | None = None
) -> list[ReplayCase]:
    """The newest ``limit`` decisions of a policy (of one ``tenant``, or all) from the audit
    store, with their verdicts.

    ``db`` is what ``SWITCHBOARD_AUDIT_DB`` holds; the store is opened read-only through its own
    read interface. The reviewer's category, when a reviewer gave one, becomes the label.
    Records whose message was withheld (redaction failed) cannot be replayed and are left out.
    """
    from service.audit import open_store  # only when recorded decisions are asked for

    try:
        store = open_store(db, read_only=True)
        try:
            recorded = await store.recent(policy_id, limit, tenant=tenant)
        finally:
            await store.close()
    except AuditStoreError as exc:
        raise ReplayError(str(exc)) from exc
    cases = []
    for item in recorded:
        try:
            cases.extend(_audit_case(item.record, item.reviewed))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"{db}: a decision record does not parse: {exc}") from exc
    return cases


def _audit_case(record: dict[str, Any], reviewed: str | None) -> list[ReplayCase]:
    if record.get("redaction") == "failed":
        return []
    llm = record["llm"]
    recorded = None
    if llm["status"] == VerdictStatus.OK.value and llm["probabilities"]:
        recorded = LabelVerdict(
            status=VerdictStatus.OK,
            probabilities={Category(k): float(v) for k, v in llm["probabilities"].items()},
            method=f"recorded {llm.get('method', '')}".strip(),
        )
    return [
        ReplayCase(
            case_id=str(record["decision_id"]),
            message=str(record["input_redacted"]),
            channel=Channel(record["channel"]),
            source="audit",
            label=Category(reviewed) if reviewed else None,
            recorded=recorded,
        )
    ]


def sample(cases: Sequence[ReplayCase], limit: int | None) -> list[ReplayCase]:
    """At most ``limit`` cases, the same ones on every run (chosen by a hash of the id)."""
    if limit is None or len(cases) <= limit:
        return list(cases)

    def key(case: ReplayCase) -> str:
        return hashlib.sha256(f"{case.source}\0{case.case_id}".encode()).hexdigest()

    keep = {id(c) for c in sorted(cases, key=key)[:limit]}
    return [c for c in cases if id(c) in keep]


# -- a revision's policies and prompts, out of git -----------------------------------------------


def _git(repo: Path, *args: str) -> bytes:
    git = shutil.which("git")
    if git is None:
        raise ReplayError("git is not installed; `switchboard diff` reads revisions with git")
    result = subprocess.run([git, "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise ReplayError(f"git {' '.join(args)} failed: {detail}")
    return result.stdout


def resolve_revision(repo: Path, rev: str) -> str:
    """The full commit id of ``rev`` (a branch, tag, ``origin/main``, ``HEAD~1``...)."""
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()


def materialise(repo: Path, commit: str, paths: Iterable[Path], dest: Path) -> None:
    """Write the files under ``paths`` (relative to the repository root) as of ``commit``."""
    for rel in paths:
        listing = _git(repo, "ls-tree", "-r", "-z", "--name-only", commit, "--", rel.as_posix())
        for name in filter(None, listing.decode().split("\0")):
            parts = PurePosixPath(name).parts
            if ".." in parts or PurePosixPath(name).is_absolute():
                raise ReplayError(f"refusing to write {name!r} outside {dest}")
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(repo, "show", f"{commit}:{name}"))


def repo_root(start: Path) -> Path:
    return Path(_git(start, "rev-parse", "--show-toplevel").decode().strip())


# -- the comparison --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One message decided under both revisions."""

    case: ReplayCase
    base: DecisionRecord
    head: DecisionRecord
    verdict_source: str  # "recorded", "cached", "model" (one call for both sides) or "model x2"

    @property
    def category_changed(self) -> bool:
        return self.base.category is not self.head.category

    @property
    def leaves_safety(self) -> bool:
        return self.base.category is SAFETY and self.head.category is not SAFETY

    @property
    def enters_safety(self) -> bool:
        return self.base.category is not SAFETY and self.head.category is SAFETY

    @property
    def review_changed(self) -> bool:
        return self.base.requires_human_review != self.head.requires_human_review

    @property
    def workflow_changed(self) -> bool:
        return _route(self.base) != _route(self.head)

    @property
    def changed(self) -> bool:
        return self.category_changed or self.review_changed or self.workflow_changed


def _head_json(engine: Engine) -> str | None:
    return None if engine.head is None else engine.head.to_json()


def _route(record: DecisionRecord) -> tuple[object, ...]:
    w = record.workflow
    return (w.name, tuple(w.completed), w.next_step, w.status, w.queue)


class Replayer:
    """Decides cases under a base and a head engine that share one backend."""

    def __init__(
        self,
        base: Engine,
        head: Engine,
        *,
        deadline_s: float = 120.0,
        hidden_cache: HiddenStateCache | None = None,
    ) -> None:
        self.base = base
        self.head = head
        self.deadline_s = deadline_s
        self.hidden_cache = hidden_cache
        self.model_calls = 0
        # A probe head reads the hidden state, which no decision record holds. When the change
        # under review is the head itself, a recorded verdict cannot show what it moves: the
        # cache or the model must answer. When both sides share one head, a recorded verdict
        # still isolates the policy change (both sides decide it without the head).
        self.reads_hidden_state = base.head is not None or head.head is not None
        self.head_changed = _head_json(base) != _head_json(head)

    def _cached(self, engine: Engine, prompt: RenderedPrompt | None) -> LabelVerdict | None:
        if self.hidden_cache is None or prompt is None or not self.reads_hidden_state:
            return None
        return self.hidden_cache.get(engine.backend.model_digest, prompt)

    async def _ask(self, engine: Engine, prompt: RenderedPrompt | None) -> LabelVerdict:
        if prompt is None:
            return LabelVerdict.failed(VerdictStatus.SKIPPED, "redaction failed: not sent")
        cached = self._cached(engine, prompt)
        if cached is not None:
            return cached
        self.model_calls += 1
        verdict = await engine.ask_model(prompt, deadline_s=self.deadline_s)
        if self.hidden_cache is not None and self.reads_hidden_state:
            self.hidden_cache.put(engine.backend.model_digest, prompt, verdict)
        return verdict

    async def compare(self, case: ReplayCase) -> Comparison | None:
        """Both decisions for ``case``; None when the message is not decidable (e.g. empty)."""
        request = DecisionRequest(case.message, case.channel, decision_id=case.case_id)
        try:
            base_prompt = self.base.prompt_for(request)
            head_prompt = self.head.prompt_for(request)
        except MessageRejectedError:
            return None
        same_prompt = (
            base_prompt is not None
            and head_prompt is not None
            and base_prompt.messages == head_prompt.messages
            and self.base.prompts.choices == self.head.prompts.choices
        )
        recorded = case.recorded
        if same_prompt and recorded is not None and recorded.hidden_state is None:
            cached = self._cached(self.base, base_prompt)
            if cached is not None:
                recorded = cached
            elif self.head_changed:
                recorded = None
        if same_prompt and recorded is not None:
            base_verdict = head_verdict = recorded
            source = "cached" if recorded.method == CACHED else "recorded"
        elif same_prompt:
            base_verdict = head_verdict = await self._ask(self.base, base_prompt)
            source = "cached" if base_verdict.method == CACHED else "model"
        else:
            base_verdict = await self._ask(self.base, base_prompt)
            head_verdict = await self._ask(self.head, head_prompt)
            source = "model x2"
        return Comparison(
            case=case,
            base=self.base.replay(request, base_verdict),
            head=self.head.replay(request, head_verdict),
            verdict_source=source,
        )
