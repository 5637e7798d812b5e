"""Operations: reload, rollback, and what is loaded, with who activated it. Admin only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from service.access.control import Caller
from service.access.guard import requires
from service.access.principal import Permission
from service.operations import reload_policies, rollback_policies
from service.problems import ProblemError, documented
from service.state import app_state

router = APIRouter(prefix="/admin", tags=["operations"])
Admin = Annotated[Caller, requires(Permission.OPERATE)]
_AUTH = {401: "No, unknown or revoked credential", 403: "The credential is not an admin's"}
_REV = {
    "id": "contact-center",
    "version": "1.0.1",
    "revision": "9c1e4f0a2b3d4e5f",
    "loaded_at": "2026-11-23T12:00:00+00:00",
}
_OLD = {"version": "1.0.0", "revision": "ae813cfa9d05837d"}
_STATUS = {
    "active": [
        {
            **_REV,
            "activated_by": "ops-admin",
            "activated_at": "2026-11-23T12:00:00+00:00",
            "action": "reload",
            "previous": _OLD,
        }
    ],
    "previous": [{**_REV, **_OLD}],
    "last_reload_error": None,
    "reloads": 2,
    "reload_failures": 0,
    "history": [
        {
            "action": "reload",
            "by": "ops-admin",
            "at": "2026-11-23T12:00:00+00:00",
            "revisions": [{k: _REV[k] for k in ("id", "version", "revision")}],
            "problems": [],
        }
    ],
}


def _describe(request: Request) -> dict[str, Any]:
    holder = app_state(request).holder
    return {
        "active": holder.describe_active(),
        "previous": holder.previous.describe() if holder.previous else [],
        "last_reload_error": holder.status.last_error,
        "reloads": holder.status.reloads,
        "reload_failures": holder.status.failures,
        "history": [a.as_dict() for a in holder.status.log.items()],
    }


@router.get(
    "/policies",
    summary="Active and previous policy revisions, last reload error",
    responses=documented(_AUTH, example=_STATUS),
)
async def policies(request: Request, _caller: Admin) -> dict[str, Any]:
    return _describe(request)


@router.post(
    "/reload",
    summary="Re-read, validate and atomically activate the policy directory",
    responses=documented(
        {**_AUTH, 422: "Policy invalid; the old one keeps serving"}, example=_STATUS
    ),
)
async def reload(request: Request, caller: Admin) -> dict[str, Any]:
    await reload_policies(app_state(request), by=caller.principal.subject)
    return _describe(request)


@router.post(
    "/rollback",
    summary="Return to the previous revision",
    responses=documented({**_AUTH, 409: "Nothing to roll back to"}, example=_STATUS),
)
async def rollback(request: Request, caller: Admin) -> dict[str, Any]:
    if not await rollback_policies(app_state(request), by=caller.principal.subject):
        raise ProblemError(409, "Nothing to roll back to", "Only one revision has been active.")
    return _describe(request)
