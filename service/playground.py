"""The policy playground: one message decided under the active policy and a candidate directory.

The candidate is a policy directory on the server, built exactly as a reload builds (the same
``check``), so its problems come back located (file:line) and nothing that serves changes. The
two decisions come from ``engine.replay``, the replay ``switchboard diff`` runs: when the
candidate's prompt renders identically the one model verdict serves both sides, so a message
costs at most one model call (two only when the prompt itself changed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from engine.categories import Category, Channel
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.errors import PolicyError, PolicyProblem, ReplayError
from engine.policy.changes import policy_changes
from engine.policy.loader import load_catalog
from engine.replay import Comparison, ReplayCase, Replayer, read_csv_cases
from service.runtime import EngineHolder
from service.settings import Settings

CANDIDATE_COMPILES = 100
"""Rule revisions the playground may compile per process (durable-rules never frees one). Its own
cache, so candidates can never use up the compiles a reload needs."""
MODEL_DEADLINE_S = 60.0
LISTED_CASES = 50
EXCLUDED_FILES = ("holdout",)
"""Labelled files never offered: the holdout is not for tuning (eval/data/README.md)."""


@dataclass(frozen=True)
class Trial:
    """A message compared under both policies, with what it cost."""

    comparison: Comparison
    active: Engine
    candidate: Engine
    candidate_dir: Path
    model_calls: int
    changes: list[str]  # what the candidate changes in the policy (Markdown code spans)


class Playground:
    """Candidates, labelled messages and comparisons for the workbench's playground page."""

    def __init__(self, holder: EngineHolder, settings: Settings) -> None:
        self._holder = holder
        self._settings = settings
        self._rules = RulesCache(CANDIDATE_COMPILES)

    # -- where candidates and messages may come from ---------------------------------------------

    @property
    def roots(self) -> list[Path]:
        """Directories a candidate must lie under: ``SWITCHBOARD_CANDIDATE_ROOTS``, else the
        directory holding the live policies directory."""
        roots = self._settings.candidate_roots or [self._settings.policies.resolve().parent]
        return [r.resolve() for r in roots]

    @property
    def data_dir(self) -> Path:
        return self._settings.playground_data or self._settings.policies.resolve().parent / (
            "eval/data"
        )

    def labelled_files(self) -> list[str]:
        """The labelled CSV files an author may pick messages from (the holdout left out)."""
        if not self.data_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.data_dir.glob("*.csv")
            if not any(p.stem.startswith(x) for x in EXCLUDED_FILES)
        )

    def labelled_cases(self, name: str, query: str = "") -> list[ReplayCase]:
        """Up to ``LISTED_CASES`` messages of one listed file whose text or id holds ``query``."""
        needle = query.casefold().strip()
        cases = [
            c
            for c in read_csv_cases(self._listed(name))
            if not needle or needle in c.message.casefold() or needle in c.case_id.casefold()
        ]
        return cases[:LISTED_CASES]

    def labelled_case(self, name: str, case_id: str) -> ReplayCase:
        for case in read_csv_cases(self._listed(name)):
            if case.case_id == case_id:
                return case
        raise ReplayError(f"{name} has no message with id {case_id!r}")

    def _listed(self, name: str) -> Path:
        if name not in self.labelled_files():
            raise ReplayError(f"{name!r} is not a labelled file here; pick one of the list")
        return self.data_dir / name

    # -- the candidate -----------------------------------------------------------------------------

    def candidate_dir(self, raw: str) -> Path:
        """The candidate directory, resolved; a ``PolicyError`` says why it cannot be used."""
        text = raw.strip()
        if not text:
            raise _refused(raw, "give the path of a policy directory on the server")
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = self._settings.policies.resolve().parent / path
        path = path.resolve()
        if not any(path == root or path.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise _refused(
                text,
                f"not under an allowed directory ({allowed}); copy the candidate there or set "
                "SWITCHBOARD_CANDIDATE_ROOTS",
            )
        if not path.is_dir():
            raise _refused(text, "no such directory on the server")
        return path

    def prompts_for(self, candidate: Path) -> Path:
        """``prompts/`` beside the candidate when there is one, else the service's templates."""
        beside = candidate.parent / "prompts"
        return beside if beside.is_dir() else self._settings.prompts_dir()

    def build_candidate(self, candidate: Path) -> dict[str, Engine]:
        """Every policy of the candidate, built as a reload builds; one ``PolicyError`` with
        every problem, located."""
        catalog = load_catalog(candidate, self.prompts_for(candidate))
        engines: dict[str, Engine] = {}
        problems: list[PolicyProblem] = []
        for policy_id, loaded in catalog.items():
            try:
                engines[policy_id] = self._holder.build_engine(loaded, rules_cache=self._rules)
            except PolicyError as exc:
                problems.extend(exc.problems)
        if problems:
            raise PolicyError(str(candidate), problems)
        return engines

    # -- the comparison ----------------------------------------------------------------------------

    async def compare(
        self,
        case: ReplayCase,
        candidate_path: str,
        policy_id: str | None = None,
    ) -> Trial:
        """``case`` under the active policy (``policy_id``, default the service's) and the
        candidate's policy of the same id. ``PolicyError`` when the candidate does not build,
        ``ReplayError`` when the message cannot be decided."""
        active_set = self._holder.active
        if active_set is None:
            raise ReplayError("no policy is active yet")
        active = active_set.get(policy_id)
        directory = self.candidate_dir(candidate_path)
        engines = await asyncio.to_thread(self.build_candidate, directory)
        candidate = engines.get(active.loaded.id)
        if candidate is None:
            raise _refused(
                str(directory),
                f"has no policy {active.loaded.id!r} (it holds {', '.join(engines) or 'none'})",
            )
        replayer = Replayer(active, candidate, deadline_s=MODEL_DEADLINE_S)
        comparison = await replayer.compare(case)
        if comparison is None:
            raise ReplayError("the message is empty: paste some text")
        changes = policy_changes(active.loaded, candidate.loaded)
        return Trial(comparison, active, candidate, directory, replayer.model_calls, changes)


def pasted(message: str, channel: Channel, label: Category | None = None) -> ReplayCase:
    return ReplayCase("pasted", message, channel, "pasted", label)


def _refused(path: str, why: str) -> PolicyError:
    return PolicyError(path, [PolicyProblem(path, "", why)])
