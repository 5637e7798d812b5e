"""Shadow runs over HTTP: admins start, stop, read and promote; a tenant reads its examples.

``/admin/shadow`` answers every tenant's counts and never a message text (an admin sees no
records); ``/shadow/report`` answers the caller's own tenant, with example decisions, for a
caller allowed to read that tenant's decisions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from service.access.control import Caller
from service.access.guard import requires
from service.access.principal import Permission
from service.problems import ProblemError, documented
from service.shadow.operations import promote_shadow, shadow_report, start_shadow, stop_shadow
from service.state import app_state

router = APIRouter(tags=["shadow runs"])
admin_router = APIRouter(prefix="/admin", tags=["shadow runs"])
_AUTH = {401: "No, unknown or revoked credential", 403: "The credential is not an admin's"}
_RUN = {
    "run_id": "5b0c2f3e9d8a4e7f8c1b2a3d4e5f6a7b",
    "directory": "/srv/switchboard/candidates/contact-center-1.4.0",
    "candidate": [
        {
            "id": "contact-center",
            "version": "1.4.0",
            "revision": "c0ffee1234567890",
            "loaded_at": "2026-12-05T08:00:00+00:00",
        }
    ],
    "started_by": "ops-1",
    "started_at": "2026-12-05T08:00:00+00:00",
    "stopped_at": None,
    "sample_rate": 0.1,
    "offered": 1200,
    "decided": {"shared": 1150},
    "skipped": {"not_sampled": 45, "model_busy": 5},
}
_REPORT = {
    "run": _RUN,
    "active": True,
    "queued": 0,
    "tenants": [
        {
            "tenant": "acme",
            "total": 1150,
            "agreed": 1139,
            "shared": 1150,
            "model": 0,
            "leave_safety": 9,
            "enter_safety": 0,
            "other_disagreements": 2,
            "examples": None,
            "agreement": 0.9904,
        }
    ],
}


class ShadowStart(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"directory": "/srv/switchboard/candidates/cc-1.4.0"}]},
    )

    directory: str = Field(
        min_length=1,
        description="An absolute path to a policy directory on the server (one policy, or a "
        "catalog like "
        "SWITCHBOARD_POLICIES); built and checked exactly as a reload.",
    )
    sample_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of messages whose candidate prompt differs that get a model call "
        "of their own; default SWITCHBOARD_SHADOW_SAMPLE_RATE.",
    )


@admin_router.post(
    "/shadow",
    status_code=201,
    summary="Load a candidate policy directory in shadow",
    responses=documented(
        {
            **_AUTH,
            404: "No policy directory at that (absolute) path on the server",
            409: "A shadow run is already active",
            422: "The candidate does not build; nothing runs",
        },
        example=_RUN,
        status=201,
    ),
)
async def start(
    body: ShadowStart,
    request: Request,
    caller: Annotated[Caller, requires(Permission.OPERATE)],
) -> dict[str, Any]:
    run = await start_shadow(
        app_state(request),
        Path(body.directory),
        by=caller.principal.subject,
        sample_rate=body.sample_rate,
    )
    return run.describe()


@admin_router.delete(
    "/shadow",
    summary="Stop the shadow run (its report stays readable)",
    dependencies=[requires(Permission.OPERATE)],
    responses=documented({**_AUTH, 409: "No shadow run is active"}, example=_RUN),
)
async def stop(request: Request) -> dict[str, Any]:
    return (await stop_shadow(app_state(request))).describe()


@admin_router.get(
    "/shadow",
    summary="The shadow report: every tenant's counts (no message text)",
    responses=documented({**_AUTH, 404: "No shadow run since start-up"}, example=_REPORT),
)
async def report(
    request: Request, caller: Annotated[Caller, requires(Permission.OPERATE)]
) -> dict[str, Any]:
    return await _report(request, caller)


@admin_router.post(
    "/shadow/promote",
    summary="Promote the candidate: a reload of its directory; the shadow stops",
    responses=documented(
        {**_AUTH, 409: "No shadow run is active", 422: "The candidate no longer builds"},
        example={"active": _RUN["candidate"]},
    ),
)
async def promote(
    request: Request, caller: Annotated[Caller, requires(Permission.OPERATE)]
) -> dict[str, Any]:
    fresh = await promote_shadow(app_state(request), by=caller.principal.subject)
    return {"active": fresh.describe()}


@router.get(
    "/shadow/report",
    summary="The shadow report for the caller's tenant, with example decisions",
    responses=documented(
        {
            401: "No, unknown or revoked credential",
            403: "The credential's role may not read decisions",
            404: "No shadow run since start-up",
            421: "The tenant's data lives in another region",
        },
        example=_REPORT,
    ),
)
async def tenant_report(
    request: Request, caller: Annotated[Caller, requires(Permission.READ_DECISIONS)]
) -> dict[str, Any]:
    return await _report(request, caller)


async def _report(request: Request, caller: Caller) -> dict[str, Any]:
    found = await shadow_report(app_state(request), caller)
    if found is None:
        raise ProblemError(404, "No shadow run", "No candidate has run in shadow since start-up.")
    return found.as_json()
