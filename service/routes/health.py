"""Probes and metrics for the platform."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.access.guard import public
from service.problems import ProblemError, documented
from service.state import app_state

router = APIRouter(tags=["probes"], dependencies=[public()])


@router.get(
    "/healthz", summary="The process is alive", responses=documented({}, example={"status": "ok"})
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="A policy is active and the model answered its last probe",
    responses=documented(
        {503: "Not ready"},
        example={
            "status": "ready",
            "backend": "embedded",
            "policies": [
                {
                    "id": "contact-center",
                    "version": "1.0.0",
                    "revision": "ae813cfa9d05837d",
                    "loaded_at": "2026-11-23T12:00:00+00:00",
                }
            ],
        },
    ),
)
async def readyz(request: Request) -> dict[str, object]:
    state = app_state(request)
    active = state.holder.active
    if active is None or not state.backend_ready:
        raise ProblemError(
            503,
            "Not ready",
            "no policy loaded" if active is None else "model backend did not answer its probe",
            headers={"Retry-After": "5"},
        )
    return {"status": "ready", "policies": active.describe(), "backend": state.guard.name}


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
