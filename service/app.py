"""The app factory: everything the service needs is built in the lifespan or handed in.

``create_app(settings, backend=..., store=..., integrations=...)`` lets tests inject a fake
backend, a store in a temporary directory and where hand-offs go; with nothing injected it builds
the configured backend, Presidio redaction, the configured audit store, and delivers hand-offs to
RabbitMQ when ``SWITCHBOARD_BROKER_URL`` is set (to the log otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI

from engine.backends.base import LLMBackend
from engine.backends.registry import build_backend
from engine.pii.base import Redactor
from service.access.control import AccessControl
from service.access.keys import KeyStore
from service.access.oidc import OidcConfig, OidcVerifier
from service.access.residency import Residency
from service.access.tenants import load_tenants
from service.activations import STARTUP
from service.admission import Admission, CircuitBreaker, ModelGuard, OverloadShedding
from service.audit import AuditStore, open_store
from service.delivery import DeliveryMetrics, Dispatcher, Integrations, LoggingIntegrations
from service.loop_lag import LoopLagMonitor
from service.metrics import Metrics
from service.middleware import BodyGuard
from service.problems import install_problem_handlers
from service.routes import admin, classify, delivery, health, records, search, shadow
from service.routes.classify_fast import ClassifyFastPath
from service.runtime import EngineHolder
from service.settings import Settings
from service.shadow import Shadow
from service.state import AppState
from service.workbench import install as install_workbench
from service.workbench.render import page_problem

log = logging.getLogger("switchboard.service")


def _presidio(redaction: Any) -> Redactor:
    from engine.pii.presidio import PresidioRedactor

    return PresidioRedactor(redaction)


async def _probe_loop(state: AppState) -> None:
    while True:
        await asyncio.sleep(state.settings.probe_interval_s)
        _set_model_health(state, await _probe(state))


def _set_model_health(state: AppState, healthy: bool) -> None:
    state.model_healthy = healthy
    state.metrics.model_up.set(1 if healthy else 0)


async def _probe(state: AppState) -> bool:
    try:
        return await asyncio.wait_for(state.guard.probe(), timeout=5)
    except (asyncio.TimeoutError, OSError):
        return False


def integrations_for(settings: Settings) -> Integrations:
    """Where hand-offs go: RabbitMQ when ``SWITCHBOARD_BROKER_URL`` is set, else the log."""
    if settings.broker_url is None:
        return LoggingIntegrations()
    from service.delivery.rabbit import RabbitIntegrations  # aio-pika only when asked for

    return RabbitIntegrations(
        settings.broker_url.get_secret_value(),
        exchange=settings.broker_exchange,
        queue_prefix=settings.broker_queue_prefix,
        declare_queues=settings.broker_declare_queues,
    )


def _access_control(settings: Settings, store: AuditStore | None) -> AccessControl:
    """Tenants, keys, OIDC and one audit store per region served (``store`` replaces the home
    region's, for tests)."""
    stores: dict[str, AuditStore] = {}
    for region, url in settings.regional_stores().items():
        stores[region] = (
            store if store is not None and region == settings.region else open_store(url)
        )
    oidc = None
    if settings.oidc_issuer and settings.oidc_jwks:
        oidc = OidcVerifier(
            OidcConfig(
                settings.oidc_issuer,
                settings.oidc_audience,
                settings.oidc_jwks,
                settings.oidc_tenant_claim,
                settings.oidc_role_claim,
                settings.oidc_queues_claim,
            )
        )
    return AccessControl(
        load_tenants(settings.tenants_dir()),
        settings.tenants_dir(),
        KeyStore(settings.keys_url()),
        Residency(stores),
        admin_token=settings.admin_token,
        oidc=oidc,
        auth_off=settings.auth == "off",
    )


def create_app(
    settings: Settings,
    *,
    backend: LLMBackend | None = None,
    store: AuditStore | None = None,
    redactor_factory: Callable[[Any], Redactor] | None = _presidio,
    integrations: Integrations | None = None,
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model: LLMBackend = (
            backend
            if backend is not None
            else await asyncio.to_thread(build_backend, settings.backend_settings())
        )
        metrics = Metrics()
        lag = LoopLagMonitor(on_sample=metrics.loop_lag.set)
        limit_ms = settings.max_loop_lag_ms
        guard = ModelGuard(
            model,
            concurrency=settings.model_concurrency,
            queue=settings.model_queue,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        )
        admission = Admission(
            guard,
            saturated=(lambda: lag.lag_ms > limit_ms) if limit_ms > 0 else (lambda: False),
            shed=metrics.shed,
        )
        metrics.model_requests.set_function(lambda: guard.calls)
        access = await asyncio.to_thread(_access_control, settings, store)
        audit = access.residency.stores.get(settings.region) or next(
            iter(access.residency.stores.values())
        )
        holder = EngineHolder(settings, guard, redactor_factory=redactor_factory)
        # One dispatcher per regional store: a hand-off committed in any region this replica
        # serves is delivered from that region's outbox (the home one also serves /admin/outbox).
        delivery_metrics = DeliveryMetrics(metrics.registry)
        dispatchers = {
            region: Dispatcher(
                regional,
                integrations if integrations is not None else integrations_for(settings),
                delivery_metrics if regional is audit else delivery_metrics.for_region(region),
                policy=settings.delivery_policy(),
            )
            for region, regional in access.residency.stores.items()
        }
        dispatcher = next(d for d in dispatchers.values() if d.store is audit)
        state = AppState(
            settings,
            holder,
            guard,
            admission,
            audit,
            metrics,
            access,
            Shadow(guard, metrics, queue_size=settings.shadow_queue),
            dispatcher=dispatcher,
            dispatchers=dispatchers,
        )
        # A broken policy at start-up stops the process: nothing to serve.
        await holder.reload(by=STARTUP)
        access.reload_tenants(list(holder.active.engines) if holder.active else [])
        for each in dispatchers.values():
            each.start()  # delivers what a previous run committed and did not deliver, too
        _set_model_health(state, await _probe(state))
        app.state.switchboard = state
        prober = asyncio.create_task(_probe_loop(state))
        lag.start()
        log.info(
            "ready",
            extra={
                "fields": {
                    "event": "ready",
                    "backend": guard.name,
                    "policies": holder.active.describe() if holder.active else [],
                }
            },
        )
        try:
            yield
        finally:
            await state.shadow.stop()
            await lag.stop()
            for each in dispatchers.values():
                await each.stop()
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            await access.close()
            await guard.aclose()

    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        summary="Contact-center triage decisions: rules plus one LLM call",
        lifespan=lifespan,
        # /docs is served from the package's own Swagger UI (service/workbench/docs.py): the
        # default page loads it from a public CDN. ReDoc is not served.
        docs_url=None,
        redoc_url=None,
    )
    # Innermost: /classify's fast path sees a request only after shedding and the body guard.
    app.add_middleware(ClassifyFastPath)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(OverloadShedding)  # outermost: a refusal must not read or parse anything
    install_problem_handlers(app, pages=page_problem)
    for router in (
        classify.router,
        admin.router,
        shadow.router,
        shadow.admin_router,
        search.router,
        records.router,
        health.router,
        delivery.router,
    ):
        app.include_router(router)
    install_workbench(app)  # the pages at /, /static and /docs
    return app
