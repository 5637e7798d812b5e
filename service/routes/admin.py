"""Operations: reload, rollback, and what is loaded. Bearer token required."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from engine.errors import PolicyError
from service.access.guard import requires
from service.access.principal import Permission
from service.problems import ProblemError, documented
from service.state import app_state

router = APIRouter(
    prefix="/admin", tags=["operations"], dependencies=[requires(Permission.OPERATE)]
)
_AUTH = {401: "No, unknown or revoked credential", 403: "The credential is not an admin's"}
_REV = {
    "id": "contact-center",
    "version": "1.0.1",
    "revision": "9c1e4f0a2b3d4e5f",
    "loaded_at": "2026-11-23T12:00:00+00:00",
}
_STATUS = {
    "active": [_REV],
    "previous": [{**_REV, "version": "1.0.0", "revision": "ae813cfa9d05837d"}],
    "last_reload_error": None,
    "reloads": 2,
    "reload_failures": 0,
}


def _describe(request: Request) -> dict[str, Any]:
    holder = app_state(request).holder
    return {
        "active": holder.active.describe() if holder.active else [],
        "previous": holder.previous.describe() if holder.previous else [],
        "last_reload_error": holder.status.last_error,
        "reloads": holder.status.reloads,
        "reload_failures": holder.status.failures,
    }


@router.get(
    "/policies",
    summary="Active and previous policy revisions, last reload error",
    responses=documented(_AUTH, example=_STATUS),
)
async def policies(request: Request) -> dict[str, Any]:
    return _describe(request)


@router.post(
    "/reload",
    summary="Re-read, validate and atomically activate the policy directory",
    responses=documented(
        {**_AUTH, 422: "Policy invalid; the old one keeps serving"}, example=_STATUS
    ),
)
async def reload(request: Request) -> dict[str, Any]:
    state = app_state(request)
    try:
        state.access.check_tenants()  # a broken tenant file: nothing is activated
        await state.holder.reload()
        active = state.holder.active
        state.access.reload_tenants(list(active.engines) if active else [])
    except PolicyError:
        state.metrics.reloads.labels("failed").inc()
        raise
    state.metrics.reloads.labels("ok").inc()
    return _describe(request)


@router.post(
    "/rollback",
    summary="Return to the previous revision",
    responses=documented({**_AUTH, 409: "Nothing to roll back to"}, example=_STATUS),
)
async def rollback(request: Request) -> dict[str, Any]:
    state = app_state(request)
    if await state.holder.rollback() is None:
        raise ProblemError(409, "Nothing to roll back to", "Only one revision has been active.")
    state.metrics.reloads.labels("rollback").inc()
    return _describe(request)
