"""What ``consume`` and ``batch`` run on: the service's engines, tenants, regional audit stores
and delivery, built the way ``create_app`` builds them, without HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from engine.backends.base import LLMBackend
from engine.backends.registry import build_backend
from service.access.residency import Residency
from service.access.tenants import load_tenants
from service.admission import CircuitBreaker, ModelGuard
from service.app import _presidio, integrations_for
from service.audit import AuditStore, open_store
from service.delivery import DeliveryMetrics, Dispatcher
from service.intake.intake import Intake, Placement
from service.runtime import EngineHolder
from service.settings import Settings


@dataclass
class IntakeRuntime:
    intake: Intake
    store: AuditStore  # the home region's (``SWITCHBOARD_REGION``)
    dispatcher: Dispatcher  # the home region's
    backend: str
    stores: dict[str, AuditStore] = field(default_factory=dict)  # every region served


@contextlib.asynccontextmanager
async def intake_runtime(
    settings: Settings,
    *,
    backend: LLMBackend | None = None,
    queue: int = 64,
    tenant: str | None = None,
) -> AsyncIterator[IntakeRuntime]:
    """``tenant``: the tenant of messages that name none (default: the only declared tenant,
    when there is exactly one; otherwise every message must name its tenant)."""
    model: LLMBackend = (
        backend
        if backend is not None
        else await asyncio.to_thread(build_backend, settings.backend_settings())
    )
    guard = ModelGuard(
        model,
        concurrency=settings.model_concurrency,
        queue=queue,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
    )
    stores = {
        region: await asyncio.to_thread(open_store, url)
        for region, url in settings.regional_stores().items()
    }
    home = stores.get(settings.region) or next(iter(stores.values()))
    holder = EngineHolder(settings, guard, redactor_factory=_presidio)
    metrics = DeliveryMetrics(CollectorRegistry())
    dispatchers = {
        region: Dispatcher(
            store,
            integrations_for(settings),
            metrics if store is home else metrics.for_region(region),
            policy=settings.delivery_policy(),
        )
        for region, store in stores.items()
    }
    by_store = {id(d.store): d for d in dispatchers.values()}
    try:
        await holder.reload()
        assert holder.active is not None
        tenants = load_tenants(settings.tenants_dir(), list(holder.active.engines))
        if tenant is None and len(tenants.by_id) == 1:
            tenant = next(iter(tenants.by_id))
        placement = Placement(tenants, Residency(stores), default_tenant=tenant)
        for each in dispatchers.values():
            each.start()
        intake = Intake(holder, placement, on_commit=lambda store: by_store[id(store)].nudge())
        yield IntakeRuntime(intake, home, by_store[id(home)], guard.name, stores)
    finally:
        for each in dispatchers.values():
            await each.stop()
        for store in stores.values():
            await store.close()
        await guard.aclose()
