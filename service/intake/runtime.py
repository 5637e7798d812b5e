"""What ``consume`` and ``batch`` run on: the service's engines, audit store and delivery, built
the way ``create_app`` builds them, without HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from engine.backends.base import LLMBackend
from engine.backends.registry import build_backend
from service.admission import CircuitBreaker, ModelGuard
from service.app import _presidio, integrations_for
from service.audit import AuditStore, open_store
from service.delivery import DeliveryMetrics, Dispatcher
from service.intake.intake import Intake
from service.runtime import EngineHolder
from service.settings import Settings


@dataclass
class IntakeRuntime:
    intake: Intake
    store: AuditStore
    dispatcher: Dispatcher
    backend: str


@contextlib.asynccontextmanager
async def intake_runtime(
    settings: Settings, *, backend: LLMBackend | None = None, queue: int = 64
) -> AsyncIterator[IntakeRuntime]:
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
    store = await asyncio.to_thread(open_store, settings.audit_db)
    holder = EngineHolder(settings, guard, redactor_factory=_presidio)
    dispatcher = Dispatcher(
        store,
        integrations_for(settings),
        DeliveryMetrics(CollectorRegistry()),
        policy=settings.delivery_policy(),
    )
    try:
        await holder.reload()
        dispatcher.start()
        intake = Intake(holder, store, on_commit=dispatcher.nudge)
        yield IntakeRuntime(intake, store, dispatcher, guard.name)
    finally:
        await dispatcher.stop()
        await store.close()
        await guard.aclose()
