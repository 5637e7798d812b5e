"""Decide an intake message once, for its tenant, in its tenant's region.

The message is placed first: its tenant (named in the message, else the intake's default), that
tenant's region (this process must serve it: nothing of another region's tenant is decided or
stored here), and the policy (``EngineSet.for_tenant``, as ``/classify`` does). Then the stored
decision is returned if its id was decided before; otherwise it is decided and recorded with its
hand-offs (one transaction) in the region's store, and that region's delivery is nudged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from engine import DecisionRequest
from engine.decide.record import encode_record
from engine.errors import PolicyNotFoundError
from service.access.residency import Residency
from service.access.tenants import Tenant, Tenants
from service.audit import AuditStore
from service.intake.message import IntakeMessage, PoisonMessageError, decision_id_for
from service.runtime import EngineHolder


@dataclass(frozen=True)
class Decided:
    decision_id: str
    record: bytes  # the record's JSON, as stored
    category: str
    requires_human_review: bool
    degraded: bool
    already: bool  # decided before: nothing new was recorded
    tenant: str = ""
    region: str = ""


@dataclass(frozen=True)
class Placement:
    """Where an intake message belongs: which tenants exist, the regions served here, and the
    tenant of a message that names none (``--tenant``; None: every message must name one)."""

    tenants: Tenants
    residency: Residency
    default_tenant: str | None = None

    def place(self, message: IntakeMessage) -> tuple[Tenant, AuditStore]:
        tenant_id = message.tenant or self.default_tenant
        if not tenant_id:
            raise PoisonMessageError(
                "no_tenant", "name the tenant: 'tenant' in the message, or run with --tenant"
            )
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise PoisonMessageError("unknown_tenant", f"no tenant {tenant_id!r} is declared")
        store = self.residency.serving(tenant)
        if store is None:
            raise PoisonMessageError(
                "wrong_region",
                f"tenant {tenant.id} lives in region {tenant.region}; this process serves "
                f"{', '.join(self.residency.regions)}: send it to the {tenant.region} intake",
            )
        return tenant, store


class Intake:
    def __init__(
        self,
        holder: EngineHolder,
        placement: Placement,
        *,
        on_commit: Callable[[AuditStore], None],
    ) -> None:
        self.holder = holder
        self.placement = placement
        self._on_commit = on_commit

    async def decide(self, message: IntakeMessage) -> Decided:
        engines = self.holder.active
        assert engines is not None  # loaded before intake starts
        tenant, store = self.placement.place(message)
        try:
            engine = engines.for_tenant(tenant, message.policy)
        except PolicyNotFoundError as exc:
            raise PoisonMessageError("unknown_policy", str(exc)) from exc
        decision_id = decision_id_for(tenant.id, engine.loaded.id, message.message_id)
        stored = await store.get(decision_id, tenant=tenant.id)
        if stored is not None:
            return _from_stored(stored, tenant, already=True)
        record = await engine.decide(
            DecisionRequest(
                message=message.message,
                channel=message.channel,
                metadata={**message.metadata, "message_id": message.message_id},
                decision_id=decision_id,
            )
        )
        encoded = encode_record(record)
        try:
            await store.append(record, encoded, tenant=tenant.id, region=tenant.region)
        except Exception:
            # Decided by someone else in the meantime (a redelivery to another consumer)?
            stored = await store.get(decision_id, tenant=tenant.id)
            if stored is None:
                raise
            return _from_stored(stored, tenant, already=True)
        self._on_commit(store)
        return Decided(
            decision_id,
            encoded,
            record.category.value,
            record.requires_human_review,
            record.degraded,
            already=False,
            tenant=tenant.id,
            region=tenant.region,
        )


def _from_stored(stored: dict[str, object], tenant: Tenant, *, already: bool) -> Decided:
    return Decided(
        str(stored["decision_id"]),
        json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode(),
        str(stored["category"]),
        bool(stored["requires_human_review"]),
        bool(stored["degraded"]),
        already=already,
        tenant=tenant.id,
        region=tenant.region,
    )
