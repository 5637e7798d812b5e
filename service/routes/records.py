"""Audit and review: stored decisions, the review queue, reviewer outcomes, labelled export."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from service.api import ReviewRequest
from service.problems import ProblemError, documented
from service.state import app_state
from service.store import ReviewOutcome, now_iso

router = APIRouter(tags=["audit and review"])
_NOT_FOUND = documented({404: "No such decision"})


@router.get(
    "/decisions/{decision_id}",
    summary="The stored (redacted) decision record",
    responses=_NOT_FOUND,
)
async def get_decision(decision_id: str, request: Request) -> dict[str, Any]:
    store = app_state(request).store
    record = await store.get(decision_id)
    if record is None:
        raise ProblemError(404, "No such decision", decision_id)
    reviews = await store.reviews_for(decision_id)
    return {"record": record, "reviews": [asdict(r) for r in reviews]}


@router.get("/reviews", summary="Decisions awaiting human review, oldest first")
async def pending(
    request: Request, limit: int = Query(default=100, ge=1, le=1000)
) -> dict[str, Any]:
    items = await app_state(request).store.pending_reviews(limit)
    return {"pending": [asdict(i) for i in items]}


@router.post(
    "/reviews/{decision_id}",
    status_code=201,
    summary="Record a reviewer's outcome",
    responses=_NOT_FOUND,
)
async def review(decision_id: str, body: ReviewRequest, request: Request) -> dict[str, Any]:
    store = app_state(request).store
    if await store.get(decision_id) is None:
        raise ProblemError(404, "No such decision", decision_id)
    outcome = ReviewOutcome(
        decision_id=decision_id,
        category=body.category.value,
        note=body.note,
        reviewer=body.reviewer,
        created_at=now_iso(),
    )
    await store.add_review(outcome)
    return asdict(outcome)


@router.get(
    "/reviews/export",
    summary="Reviewed decisions as labelled CSV (text,label) for evaluation",
    response_class=PlainTextResponse,
)
async def export(request: Request, limit: int = Query(default=10_000, ge=1, le=100_000)) -> str:
    rows = await app_state(request).store.labelled(limit)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "label", "source"])
    for decision_id, text, label in rows:
        writer.writerow([decision_id, text, label, "review"])
    return out.getvalue()
