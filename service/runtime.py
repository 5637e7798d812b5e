"""The engines the service runs: built and validated off the request path, swapped atomically.

A reload builds a complete new set of engines (one per policy) and only then replaces the
reference; a request holds the set it started with, so in-flight requests finish on it. The
previous set is kept for rollback, and every activation (who, when, what) in ``status.log``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.backends.base import LLMBackend
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.errors import PolicyError, PolicyNotFoundError, PolicyProblem
from engine.pii.base import Redactor
from engine.policy.loader import LoadedPolicy, default_prompts_dir, load_catalog, policy_dirs
from engine.policy.model import Redaction
from service.access.tenants import Tenant
from service.activations import STARTUP, Action, ActivationLog
from service.settings import Settings

RedactorFactory = Callable[[Redaction], Redactor]
log = logging.getLogger("switchboard.runtime")


@dataclass(frozen=True)
class EngineSet:
    """Every policy's engine for one load of the policy directory."""

    engines: dict[str, Engine]
    default_id: str
    loaded_at: str

    def get(self, policy_id: str | None) -> Engine:
        key = policy_id or self.default_id
        if key not in self.engines:
            raise PolicyNotFoundError(key, sorted(self.engines))
        return self.engines[key]

    def for_tenant(self, tenant: Tenant, policy_id: str | None) -> Engine:
        """The engine a tenant's message is decided by: the policy it names, else the tenant's
        default, else the service's. One the tenant may not use is refused exactly like one that
        does not exist (``/classify``, ``consume`` and ``batch`` all ask here)."""
        engine = self.get(policy_id or tenant.default_policy)
        if not tenant.allows(engine.loaded.id):
            allowed = sorted(p for p in self.engines if tenant.allows(p))
            raise PolicyNotFoundError(engine.loaded.id, allowed)
        return engine

    @cached_property
    def all(self) -> tuple[Engine, ...]:
        return tuple(self.engines.values())

    def describe(self) -> list[dict[str, str]]:
        return [
            {
                "id": e.loaded.id,
                "version": e.loaded.version,
                "revision": e.loaded.revision,
                "loaded_at": self.loaded_at,
            }
            for e in self.engines.values()
        ]


@dataclass
class ReloadStatus:
    last_error: dict[str, Any] | None = None
    reloads: int = 0
    failures: int = 0
    history: list[str] = field(default_factory=list)
    log: ActivationLog = field(default_factory=ActivationLog)  # who activated what, when


class EngineHolder:
    def __init__(
        self,
        settings: Settings,
        backend: LLMBackend,
        *,
        redactor_factory: RedactorFactory | None,
        rules_cache: RulesCache | None = None,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._redactor_factory = redactor_factory
        self._redactors: dict[str, Redactor] = {}
        self.rules_cache = rules_cache or RulesCache()
        self._lock = asyncio.Lock()
        self.active: EngineSet | None = None
        self.previous: EngineSet | None = None
        self.status = ReloadStatus()
        self.source = settings.policies  # the policy directory served (a promotion changes it)

    def _redactor(self, redaction: Redaction) -> Redactor:
        """One redactor per distinct redaction section, shared by revisions that agree."""
        assert self._redactor_factory is not None  # only handed to builds when there is one
        key = hashlib.sha256(redaction.model_dump_json().encode()).hexdigest()
        if key not in self._redactors:
            self._redactors[key] = self._redactor_factory(redaction)
        return self._redactors[key]

    def build_engine(self, loaded: LoadedPolicy, *, rules_cache: RulesCache) -> Engine:
        """One policy built exactly as a reload builds it (this backend, redaction and pricing;
        ``Engine.build`` is also what ``switchboard check`` runs). The workbench's playground
        builds its candidates here, with a rules cache of its own."""
        return Engine.build(
            loaded,
            self._backend,
            rules_cache=rules_cache,
            redactor_factory=self._redactor if self._redactor_factory else None,
            pricing=self._settings.pricing(),
        )

    def build(self, directory: Path | None = None) -> EngineSet:
        """Load, validate and build every engine; raise one ``PolicyError`` with all problems.

        ``directory`` is a policy directory other than the one served (a shadow candidate);
        default: the one served. ``Engine.build`` is the same build ``switchboard check`` runs,
        so what passes check reloads.
        """
        s = self._settings
        policies = directory or self.source
        catalog = load_catalog(policies, prompts_for(s, policies))
        pricing = s.pricing()
        engines: dict[str, Engine] = {}
        problems: list[PolicyProblem] = []
        for pid, loaded in catalog.items():
            try:
                engines[pid] = Engine.build(
                    loaded,
                    self._backend,
                    rules_cache=self.rules_cache,
                    redactor_factory=self._redactor if self._redactor_factory else None,
                    pricing=pricing,
                )
            except PolicyError as exc:
                problems.extend(exc.problems)
        default = s.default_policy or next(iter(catalog))
        if default not in catalog:
            problems.append(
                PolicyProblem(
                    str(policies),
                    "",
                    f"SWITCHBOARD_DEFAULT_POLICY names {default!r}; loaded: {', '.join(catalog)}",
                )
            )
        if problems:
            raise PolicyError(str(policies), problems)
        return EngineSet(engines, default, datetime.now(timezone.utc).isoformat())

    async def reload(self, directory: Path | None = None, *, by: str = STARTUP) -> EngineSet:
        """Build a new set and swap it in; on any failure the old set keeps serving.

        ``directory`` reloads from another policy directory (promoting a shadow candidate); it
        is then the one later reloads read. ``by`` is who asked (the caller's subject). A
        failure of any kind is a ``PolicyError`` (the route answers 422) and is kept in
        ``status.last_error`` for ``/admin/policies``.
        """
        async with self._lock:
            try:
                fresh = await asyncio.to_thread(self.build, directory)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, PolicyError)
                    else _unexpected(directory or self.source, exc)
                )
                self.note_failure(error, by=by)
                if error is exc:
                    raise
                raise error from exc
            for engine in fresh.engines.values() if self._settings.warm_up else ():
                # Cache the new prompt prefix before traffic arrives (cheap if unchanged).
                verdict = await engine.warm_up()
                log.info(
                    "warm-up",
                    extra={
                        "fields": {
                            "event": "warm_up",
                            "policy": engine.loaded.id,
                            "status": verdict.status.value,
                            "ms": round(verdict.latency_ms, 1),
                        }
                    },
                )
            action: Action = "start" if self.active is None else "reload"
            if self.active is None or _revisions(fresh) != _revisions(self.active):
                self.previous = self.active
            self.active = fresh
            if directory is not None:
                self.source = directory
            self.status.reloads += 1
            self.status.last_error = None
            self.status.history.append(",".join(sorted(_revisions(fresh))))
            self.status.log.add(action, by, fresh.all)
            return fresh

    def note_failure(self, error: PolicyError, *, by: str) -> None:
        """Record a failed reload (the holder's own, or a check the route ran first, such as the
        tenants'): counted, kept as ``last_error`` and in the log, with its located problems."""
        problems = [str(p) for p in error.problems]
        self.status.failures += 1
        self.status.last_error = {
            "at": datetime.now(timezone.utc).isoformat(),
            "by": by,
            "problems": problems,
        }
        self.status.log.add("reload failed", by, self.active.all if self.active else (), problems)

    async def rollback(self, *, by: str) -> EngineSet | None:
        async with self._lock:
            if self.previous is None:
                return None
            self.active, self.previous = self.previous, self.active
            # The failed reload no longer describes what serves; the log keeps it.
            self.status.last_error = None
            self.status.log.add("rollback", by, self.active.all)
            return self.active

    def describe_active(self) -> list[dict[str, Any]]:
        """Each serving policy: its revision, who activated it and when, and the revision
        before it (what a rollback returns to), for ``/admin/policies`` and the policy page."""
        if self.active is None:
            return []
        current = self.status.log.current()
        before = {e.loaded.id: e for e in self.previous.all} if self.previous else {}
        out: list[dict[str, Any]] = []
        for entry in self.active.describe():
            old = before.get(entry["id"])
            out.append(
                {
                    **entry,
                    "activated_by": current.by if current else None,
                    "activated_at": current.at if current else None,
                    "action": current.action if current else None,
                    "previous": {"version": old.loaded.version, "revision": old.loaded.revision}
                    if old is not None
                    else None,
                }
            )
        return out


def prompts_for(settings: Settings, policies: Path) -> Path:
    """The templates for a policy directory: the served one's as configured; another one's
    (a shadow candidate: a catalog, or one policy) ``SWITCHBOARD_PROMPTS`` or ``prompts/``
    beside its catalog."""
    if policies == settings.policies:
        return settings.prompts_dir()
    single = policies.is_dir() and policy_dirs(policies) == [policies]
    catalog = policies.parent if single else policies
    return settings.prompts or default_prompts_dir(catalog, {})


def _unexpected(policies: Path, exc: Exception) -> PolicyError:
    problem = PolicyProblem(
        str(policies),
        "",
        f"building the engines failed: {type(exc).__name__}: {exc}; the previous revision "
        "keeps serving (run `switchboard check` on the policy directory)",
    )
    return PolicyError(str(policies), [problem])


def _revisions(engine_set: EngineSet) -> set[str]:
    return {e.loaded.revision for e in engine_set.engines.values()}
