"""The shadow report: per tenant, how often the candidate agreed, and what crossed the safety line.

Counts come from every store asked (an operator's report: all regions, no text); examples (the
redacted message, the two categories) only for the tenant whose decisions the caller may read,
and each read of them is recorded in that tenant's access audit, like any read of decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from service.access.control import Caller
from service.audit import AccessRecord, AuditStore, now_iso
from service.audit.shadow import ExampleKind, SafetyMove, ShadowExample, VerdictSource
from service.shadow.runner import ShadowRun

EXAMPLES = 5


@dataclass
class TenantShadow:
    tenant: str
    total: int = 0
    agreed: int = 0
    shared: int = 0
    model: int = 0
    leave_safety: int = 0
    enter_safety: int = 0
    other_disagreements: int = 0
    # None: the caller may not read this tenant's decisions (counts only).
    examples: dict[str, list[ShadowExample]] | None = None

    @property
    def agreement(self) -> float | None:
        return round(self.agreed / self.total, 4) if self.total else None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["agreement"] = self.agreement
        if self.examples is not None:
            out["examples"] = {k: [asdict(e) for e in v] for k, v in self.examples.items()}
        return out


@dataclass
class ShadowReport:
    run: dict[str, Any]
    active: bool
    queued: int
    tenants: list[TenantShadow] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "active": self.active,
            "queued": self.queued,
            "tenants": [t.as_json() for t in self.tenants],
        }


async def tenant_counts(
    run_id: str, stores: Iterable[AuditStore], *, tenant: str | None
) -> dict[str, TenantShadow]:
    out: dict[str, TenantShadow] = {}
    seen: set[int] = set()
    for store in stores:
        if id(store) in seen:
            continue
        seen.add(id(store))
        for cell in await store.shadow_counts(run_id, tenant=tenant):
            t = out.setdefault(cell.tenant, TenantShadow(cell.tenant))
            t.total += cell.count
            t.agreed += cell.count if cell.agree else 0
            t.shared += cell.count if cell.verdict is VerdictSource.SHARED else 0
            t.model += cell.count if cell.verdict is VerdictSource.MODEL else 0
            t.leave_safety += cell.count if cell.safety is SafetyMove.LEAVE else 0
            t.enter_safety += cell.count if cell.safety is SafetyMove.ENTER else 0
            if cell.safety is SafetyMove.SAME and not cell.agree:
                t.other_disagreements += cell.count
    return out


async def build_report(
    run: ShadowRun,
    caller: Caller,
    stores: Iterable[AuditStore],
    *,
    active: bool,
    queued: int,
    examples_from: AuditStore | None = None,
    examples: int = EXAMPLES,
) -> ShadowReport:
    """The report ``caller`` may see: its own tenant's counts when it acts for a tenant
    (``caller.tenant``), every tenant's in ``stores`` otherwise (an operator). Examples come
    from ``examples_from``, the store of the caller's own tenant, and only when the caller may
    read that tenant's decisions."""
    scoped = caller.tenant.id if caller.tenant is not None else None
    counts = await tenant_counts(run.run_id, stores, tenant=scoped)
    own = caller.principal.tenant
    if examples_from is not None and caller.principal.reads_decisions_of(own):
        mine = counts.setdefault(own, TenantShadow(own))
        mine.examples = await _examples(run.run_id, caller, examples_from, own, examples)
    return ShadowReport(
        run.describe(),
        active,
        queued,
        sorted(counts.values(), key=lambda t: t.tenant),
    )


async def _examples(
    run_id: str, caller: Caller, store: AuditStore, tenant: str, limit: int
) -> dict[str, list[ShadowExample]]:
    found = {
        kind.value: await store.shadow_examples(run_id, kind, limit, tenant=tenant)
        for kind in ExampleKind
    }
    ids = tuple(e.decision_id for each in found.values() for e in each)
    if ids:
        await store.record_access(
            AccessRecord(
                now_iso(),
                caller.principal.subject,
                tenant,
                caller.principal.role,
                "shadow_report",
                ids,
            )
        )
    return found
