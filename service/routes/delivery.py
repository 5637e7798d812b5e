"""Operations on hand-off delivery: outbox depth, dead letters, replay. Bearer token required."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from service.delivery import Dispatcher
from service.problems import ProblemError, documented
from service.state import app_state, require_admin

router = APIRouter(
    prefix="/admin/outbox", tags=["operations"], dependencies=[Depends(require_admin)]
)
_AUTH = {401: "Missing or wrong bearer token", 404: "Admin routes are off (no token configured)"}
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


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher = app_state(request).dispatcher
    if dispatcher is None:
        raise ProblemError(503, "Not ready", "Delivery has not started.")
    return dispatcher


@router.get(
    "",
    summary="Outbox depth and dead letters (hand-offs that kept failing, with the reason)",
    responses=documented(_AUTH, example=_STATUS),
)
async def outbox(
    request: Request, limit: int = Query(default=100, ge=1, le=10_000)
) -> dict[str, Any]:
    dispatcher = _dispatcher(request)
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
    responses=documented(_AUTH, example={"replayed": 1}),
)
async def replay(body: ReplayRequest, request: Request) -> dict[str, int]:
    return {"replayed": await _dispatcher(request).replay(body.outbox_ids)}
