"""``switchboard diff --base REV``: how a policy change moves real decisions, for its pull request.

The base revision's ``policies/`` and ``prompts/`` are read out of git into a temporary directory;
the head is the working tree (or ``--head REV``). Labelled CSV messages and, with ``--audit-db``,
recorded decisions are replayed under both (see ``eval.policy_diff.replay``) and the report lists
every message whose category, review status or workflow changes, loudest first: leaving safety.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine import (
    Engine,
    LoadedPolicy,
    PolicyError,
    ReplayError,
    RulesCache,
    default_prompts_dir,
    load_catalog,
)
from engine.backends.base import LLMBackend
from engine.backends.registry import BACKENDS, BackendSettings, build_backend
from eval.hidden_cache import HiddenStateCache
from eval.policy_diff.replay import (
    ReplayCase,
    Replayer,
    materialise,
    read_audit_cases,
    read_csv_cases,
    repo_root,
    resolve_revision,
    sample,
)
from eval.policy_diff.report import PolicyDiff, headline, render_report

EXIT_LEAVES_SAFETY = 3
DEFAULT_DATA = Path("eval/data/dev.csv")


@dataclass(frozen=True)
class DiffOptions:
    base: str
    policies: Path = Path("policies")
    prompts: Path | None = None
    head: str | None = None
    data: list[Path] = field(default_factory=list)
    audit_db: str | None = None
    audit_limit: int = 1000
    audit_tenant: str | None = None
    limit: int | None = None
    policy: str | None = None
    deadline_s: float = 120.0
    max_listed: int = 50
    cache_dir: Path | None = None


@dataclass(frozen=True)
class DiffResult:
    report: str
    diffs: list[PolicyDiff]

    @property
    def leaves_safety(self) -> int:
        return sum(d.count("leaves_safety") for d in self.diffs)


def _relative(path: Path, root: Path, what: str) -> Path:
    try:
        return path.resolve().relative_to(root)
    except ValueError as exc:
        raise ReplayError(f"{what} directory {path} is outside the repository {root}") from exc


def _load_revision(
    root: Path, rev: str, rel: tuple[Path, Path], dest: Path
) -> tuple[dict[str, LoadedPolicy], str]:
    commit = resolve_revision(root, rev)
    materialise(root, commit, rel, dest)
    try:
        return load_catalog(dest / rel[0], dest / rel[1]), commit
    except PolicyError as exc:
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        where = f"{rev} ({commit[:10]})"
        raise ReplayError(f"the policies at {where} do not load:\n{problems}") from exc


def _messages(options: DiffOptions, root: Path) -> list[ReplayCase]:
    paths = list(options.data)
    if not paths and options.audit_db is None and (root / DEFAULT_DATA).is_file():
        paths = [root / DEFAULT_DATA]
    if not paths and options.audit_db is None:
        raise ReplayError(
            f"no messages to replay: pass --data FILE (a labelled CSV with a 'text' column) "
            f"and/or --audit-db PATH ({DEFAULT_DATA} does not exist)"
        )
    cases: list[ReplayCase] = []
    for path in paths:
        cases += read_csv_cases(path)
    return cases


async def run_diff(options: DiffOptions, backend: LLMBackend) -> DiffResult:
    """Replay and compare; the backend is only called when no recorded verdict can be used."""
    policies = options.policies.resolve()
    prompts = (options.prompts or default_prompts_dir(policies)).resolve()
    root = repo_root(policies if policies.is_dir() else Path.cwd())
    rel = (_relative(policies, root, "policies"), _relative(prompts, root, "prompts"))
    csv_cases = _messages(options, root)
    with tempfile.TemporaryDirectory(prefix="switchboard-diff-") as tmp:
        base_catalog, base_commit = _load_revision(root, options.base, rel, Path(tmp) / "base")
        if options.head is None:
            try:
                head_catalog = load_catalog(policies, prompts)
            except PolicyError as exc:
                raise ReplayError(f"the working tree's policies do not load:\n{exc}") from exc
            head_name = "working tree"
        else:
            head_catalog, head_commit = _load_revision(root, options.head, rel, Path(tmp) / "head")
            head_name = f"`{options.head}` ({head_commit[:10]})"
        base_name = f"`{options.base}` ({base_commit[:10]})"
        notes = [f"policy `{p}` only in the base" for p in base_catalog if p not in head_catalog]
        notes += [f"policy `{p}` is new" for p in head_catalog if p not in base_catalog]
        ids = [p for p in head_catalog if p in base_catalog]
        if options.policy is not None:
            if options.policy not in ids:
                raise ReplayError(
                    f"policy {options.policy!r} is not in both revisions; common: {ids or 'none'}"
                )
            ids = [options.policy]
        rules_cache = RulesCache()
        diffs = []
        for policy_id in ids:
            cases = list(csv_cases)
            if options.audit_db is not None:
                cases += await read_audit_cases(
                    options.audit_db, policy_id, options.audit_limit, tenant=options.audit_tenant
                )
            diffs.append(
                await _diff_policy(
                    base_catalog[policy_id],
                    head_catalog[policy_id],
                    sample(cases, options.limit),
                    backend,
                    rules_cache,
                    options.deadline_s,
                    HiddenStateCache(options.cache_dir) if options.cache_dir else None,
                )
            )
        report = render_report(
            diffs,
            base_name=base_name,
            head_name=head_name,
            notes=notes,
            max_listed=options.max_listed,
        )
    return DiffResult(report, diffs)


async def _diff_policy(
    base: LoadedPolicy,
    head: LoadedPolicy,
    cases: list[ReplayCase],
    backend: LLMBackend,
    rules_cache: RulesCache,
    deadline_s: float,
    hidden_cache: HiddenStateCache | None,
) -> PolicyDiff:
    def build(loaded: LoadedPolicy) -> Engine:
        return Engine.build(
            loaded,
            backend,
            rules_cache=rules_cache,
        )

    replayer = Replayer(build(base), build(head), deadline_s=deadline_s, hidden_cache=hidden_cache)
    diff = PolicyDiff(base=base, head=head, comparisons=[])
    for case in cases:
        comparison = await replayer.compare(case)
        if comparison is None:
            diff.skipped += 1
            continue
        diff.comparisons.append(comparison)
        diff.sources[case.source] += 1
    diff.model_calls = replayer.model_calls
    return diff


# -- the subcommand ------------------------------------------------------------------------------


def options_from(args: argparse.Namespace) -> DiffOptions:
    return DiffOptions(
        base=args.base,
        head=args.head,
        policies=Path(args.policies),
        prompts=Path(args.prompts) if args.prompts else None,
        data=[Path(d) for d in args.data or ()],
        audit_db=args.audit_db,
        audit_limit=args.audit_limit,
        audit_tenant=args.audit_tenant,
        limit=args.limit,
        policy=args.policy,
        deadline_s=args.deadline_s,
        max_listed=args.max_listed,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
    )


async def _diff_async(args: argparse.Namespace) -> int:
    options = options_from(args)
    backend = build_backend(BackendSettings.from_env(args.backend))
    try:
        result = await run_diff(options, backend)
    finally:
        await backend.aclose()
    if args.out:
        Path(args.out).write_text(result.report, encoding="utf-8")
    else:
        sys.stdout.write(result.report)
    for diff in result.diffs:
        print(f"{diff.head.id}: {headline(diff)}", file=sys.stderr)
    if args.fail_on_safety_exit and result.leaves_safety:
        return EXIT_LEAVES_SAFETY
    return 0


def _diff(args: argparse.Namespace) -> int:
    return asyncio.run(_diff_async(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    diff = sub.add_parser(
        "diff",
        help="replay messages under a base revision's policies and this one; report what changes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff.add_argument("--base", required=True, help="git revision to compare against")
    diff.add_argument("--head", help="git revision of the change (default: the working tree)")
    diff.add_argument(
        "--policies", default=os.environ.get("SWITCHBOARD_POLICIES", "policies"), help="policy dir"
    )
    diff.add_argument("--prompts", help="prompt template directory (default: ../prompts)")
    diff.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        help=f"labelled CSV (id,text,label[,channel]); repeatable (default: {DEFAULT_DATA})",
    )
    diff.add_argument(
        "--audit-db",
        metavar="PATH_OR_URL",
        help="also replay recorded decisions: a SQLite file or a postgresql:// URL",
    )
    diff.add_argument("--audit-limit", type=int, default=1000, help="newest N audit decisions")
    diff.add_argument(
        "--audit-tenant", help="replay only this tenant's recorded decisions (default: all)"
    )
    diff.add_argument("--limit", type=int, help="replay at most N messages (a stable sample)")
    diff.add_argument("--policy", help="only this policy id (default: every policy in both)")
    diff.add_argument(
        "--backend", choices=BACKENDS, default=os.environ.get("SWITCHBOARD_BACKEND", "embedded")
    )
    diff.add_argument("--deadline-s", type=float, default=120.0, help="per model call")
    diff.add_argument(
        "--cache-dir",
        default="eval/out/hidden-cache",
        help="hidden states for probe heads, shared with `eval fit-head` (empty: no cache)",
    )
    diff.add_argument("--max-listed", type=int, default=50, help="changes listed per section")
    diff.add_argument("--out", metavar="FILE", help="write the Markdown report here")
    diff.add_argument(
        "--fail-on-safety-exit",
        action="store_true",
        help=f"exit {EXIT_LEAVES_SAFETY} when any message leaves safety",
    )
    handler: Callable[[argparse.Namespace], int] = _diff
    diff.set_defaults(handler=handler)
