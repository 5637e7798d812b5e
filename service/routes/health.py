"""Probes and metrics for the platform.

``/healthz``: the process is alive. ``/readyz``: this replica can give a decision (a policy is
active, the audit store of every region it serves commits); the model's health is a field of its
body and a metric, never a reason to be taken out of rotation, because the policy's fallbacks
decide without the model.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine import AuditStoreError
from engine.backends.openai_compat import OpenAICompatibleBackend
from service.access.guard import public
from service.audit import AuditStore
from service.problems import ProblemError, documented
from service.state import AppState, app_state

STORE_PING_TIMEOUT_S = 2.0

router = APIRouter(tags=["probes"], dependencies=[public()])


@router.get(
    "/healthz", summary="The process is alive", responses=documented({}, example={"status": "ok"})
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="This replica can give a decision: a policy is active and the audit store commits",
    description="Model health does not decide readiness: with the model down the policy's "
    "fallbacks still decide (rules-only, with human review), and a Service that took every "
    "replica out of rotation would turn that degradation into refused connections. Model "
    "health is reported in `model` here, in `switchboard_model_up` and "
    "`switchboard_circuit_open`.",
    responses=documented(
        {503: "Not ready"},
        example={
            "status": "ready",
            "backend": "openai",
            "regions": ["eu"],
            "policies": [
                {
                    "id": "contact-center",
                    "version": "1.0.0",
                    "revision": "ae813cfa9d05837d",
                    "loaded_at": "2026-11-23T12:00:00+00:00",
                }
            ],
            "model": {
                "healthy": True,
                "circuit": "closed",
                "endpoints": [{"url": "http://vllm-0:8000/v1", "healthy": True}],
            },
        },
    ),
)
async def readyz(request: Request) -> dict[str, object]:
    state = app_state(request)
    active = state.holder.active
    if active is None:
        raise ProblemError(503, "Not ready", "no policy loaded", headers={"Retry-After": "5"})
    stores = state.access.residency.stores or {state.settings.region: state.store}
    failing = await _failing_stores(stores)
    if failing:
        detail = "; ".join(f"region {region}: {why}" for region, why in sorted(failing.items()))
        raise ProblemError(
            503,
            "Not ready",
            f"the audit store does not commit: {detail}",
            headers={"Retry-After": "5"},
        )
    return {
        "status": "ready",
        "policies": active.describe(),
        "regions": sorted(stores),
        "backend": state.guard.name,
        "model": model_health(state),
    }


async def _failing_stores(stores: dict[str, AuditStore]) -> dict[str, str]:
    """Each served region's store must commit: a replica that cannot record a region's decisions
    would answer its tenants 503, so it leaves rotation rather than take their traffic."""

    async def ping(store: AuditStore) -> str | None:
        try:
            await asyncio.wait_for(store.ping(), timeout=STORE_PING_TIMEOUT_S)
        except AuditStoreError as exc:
            return str(exc) or type(exc).__name__
        except asyncio.TimeoutError:
            return "no commit in time"
        return None

    answers = await asyncio.gather(*(ping(store) for store in stores.values()))
    return {region: why for region, why in zip(stores, answers, strict=True) if why is not None}


def model_health(state: AppState) -> dict[str, object]:
    """The model's health as this replica sees it: for alerts and people, not for routing."""
    health: dict[str, object] = {
        "healthy": state.model_healthy,
        "circuit": state.guard.breaker.state,
    }
    backend = state.guard.backend
    if isinstance(backend, OpenAICompatibleBackend):
        health["endpoints"] = backend.describe()
    return health


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {
                CONTENT_TYPE_LATEST: {
                    "example": "switchboard_decisions_total{"
                    'category="safety_compliance",outcome="review",'
                    'policy_version="1.0.0",channel="chat"} 12.0\n'
                }
            }
        }
    },
)
async def metrics(request: Request) -> Response:
    state = app_state(request)
    state.metrics.model_queue.set(state.guard.waiting)
    state.metrics.circuit_open.set(1 if state.guard.breaker.state == "open" else 0)
    state.metrics.rulesets_compiled.set(state.holder.rules_cache.compiled_count)
    state.metrics.active_revision.clear()
    for engine in state.holder.active.engines.values() if state.holder.active else ():
        loaded = engine.loaded
        state.metrics.active_revision.labels(loaded.id, loaded.version, loaded.revision).set(1)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
