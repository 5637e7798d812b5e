"""Operations on hand-off delivery: outbox depth, dead letters, replay. The admin role.

A replica serving several regions drains each region's outbox with its own dispatcher; these
routes address the home region's unless ``region`` names another one this replica serves.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from service.access.guard import requires
from service.access.principal import Permission
from service.delivery import Dispatcher
from service.problems import ProblemError, documented
from service.state import app_state

router = APIRouter(
    prefix="/admin/outbox", tags=["operations"], dependencies=[requires(Permission.OPERATE)]
)
_AUTH = {
    401: "No, unknown or revoked credential",
    403: "The credential is not an admin's",
    404: "This replica serves no such region",
}
_REGION = Query(
    default=None,
    max_length=64,
    description="A region this replica serves (default: its home region, SWITCHBOARD_REGION).",
)
_DEAD = {
    "outbox_id": 412,
    "idempotency_key": "3f1c0a9e5b2d4c8f9a7e6d5c4b3a2910:report_to_safety_db",
    "routing_key": "dispatch.pharmacovigilance_db",
    "attempts": 5,
    "reason": "RabbitMQ returned or refused 'dispatch.pharmacovigilance_db': ...",
    "at": "2026-11-23T12:00:00+00:00",
}
_STATUS = {"delivers_to": "rabbitmq", "pending": 0, "dead": 1, "dead_letters": [_DEAD]}


class ReplayRequest(BaseModel):
    outbox_ids: list[int] = Field(
        default_factory=list, description="Dead letters to replay; empty replays every one."
    )


def _dispatcher(request: Request, region: str | None = None) -> Dispatcher:
    state = app_state(request)
    if region is None:
        dispatcher = state.dispatcher
    else:
        dispatcher = state.dispatchers.get(region)
        if dispatcher is None and state.dispatchers:
            raise ProblemError(
                404,
                "No such region",
                f"this replica serves {', '.join(sorted(state.dispatchers))}",
            )
    if dispatcher is None:
        raise ProblemError(503, "Not ready", "Delivery has not started.")
    return dispatcher


@router.get(
    "",
    summary="Outbox depth and dead letters (hand-offs that kept failing, with the reason)",
    responses=documented(_AUTH, example=_STATUS),
)
async def outbox(
    request: Request,
    limit: int = Query(default=100, ge=1, le=10_000),
    region: str | None = _REGION,
) -> dict[str, Any]:
    dispatcher = _dispatcher(request, region)
    pending, dead = await dispatcher.measure()
    letters = await dispatcher.store.dead_letters(limit)
    return {
        "delivers_to": dispatcher.integrations.name,
        "pending": pending,
        "dead": dead,
        "dead_letters": [asdict(d) for d in letters],
    }


@router.post(
    "/replay",
    summary="Send dead letters back to delivery (after fixing the cause)",
    responses=documented(
        {**_AUTH, 400: "Malformed JSON or not UTF-8", 413: "Body too large"},
        example={"replayed": 1},
    ),
)
async def replay(
    body: ReplayRequest, request: Request, region: str | None = _REGION
) -> dict[str, int]:
    return {"replayed": await _dispatcher(request, region).replay(body.outbox_ids)}
