"""Where ``switchboard diff`` gets its messages and revisions: recorded decisions from the audit
store, and a revision's policies and prompts out of git.

The replay itself (one verdict shared by both revisions when the prompt renders identically) is
``engine.replay``, which the workbench's playground uses too.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from engine import AuditStoreError, Category, Channel, ReplayError, VerdictStatus
from engine.backends.base import LabelVerdict
from engine.replay import ReplayCase


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
