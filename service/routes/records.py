"""Audit and review: stored decisions, the review queue, reviewer outcomes, labelled export.

A reviewer's outcome continues the workflow: the reviewed category's workflow runs from its
``after_review`` step (``Engine.after_review``), and the outcome is committed with the hand-offs
that implies in one transaction, then delivered like any other hand-off.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from engine.errors import PolicyNotFoundError
from service.api import ReviewRequest
from service.audit import ReviewOutcome, now_iso
from service.problems import ProblemError, documented
from service.state import app_state

router = APIRouter(tags=["audit and review"])
_PENDING = {
    "decision_id": "3f1c0a9e5b2d4c8f9a7e6d5c4b3a2910",
    "created_at": "2026-11-23T12:00:00+00:00",
    "category": "safety_compliance",
    "policy_revision": "ae813cfa9d05837d",
    "queue": "pharmacovigilance",
}
_REVIEW = {
    "decision_id": _PENDING["decision_id"],
    "category": "safety_compliance",
    "note": "Confirmed adverse reaction; report filed.",
    "reviewer": "pv-specialist-7",
    "created_at": "2026-11-23T13:10:00+00:00",
}
_RECORD = {
    "record": {
        "decision_id": _PENDING["decision_id"],
        "category": "safety_compliance",
        "input_redacted": "I got a rash after the pills, call me on <PHONE_NUMBER>",
        "requires_human_review": True,
        "policy": {"id": "contact-center", "version": "1.0.0", "revision": "ae813cfa9d05837d"},
        "...": "...",
    },
    "reviews": [_REVIEW],
}


@router.get(
    "/decisions/{decision_id}",
    summary="The stored (redacted) decision record",
    responses=documented({404: "No such decision"}, example=_RECORD),
)
async def get_decision(decision_id: str, request: Request) -> dict[str, Any]:
    store = app_state(request).store
    record = await store.get(decision_id)
    if record is None:
        raise ProblemError(404, "No such decision", decision_id)
    reviews = await store.reviews_for(decision_id)
    handoffs = await store.handoffs_for(decision_id)
    return {
        "record": record,
        "reviews": [asdict(r) for r in reviews],
        "handoffs": [asdict(h) for h in handoffs],
    }


@router.get(
    "/reviews",
    summary="Decisions awaiting human review, oldest first",
    responses=documented({}, example={"pending": [_PENDING]}),
)
async def pending(
    request: Request, limit: int = Query(default=100, ge=1, le=1000)
) -> dict[str, Any]:
    items = await app_state(request).store.pending_reviews(limit)
    return {"pending": [asdict(i) for i in items]}


@router.post(
    "/reviews/{decision_id}",
    status_code=201,
    summary="Record a reviewer's outcome",
    responses=documented(
        {404: "No such decision", 409: "The decision's policy is no longer loaded"},
        example={**_REVIEW, "handoffs": [f"{_PENDING['decision_id']}:report_to_safety_db"]},
        status=201,
    ),
)
async def review(decision_id: str, body: ReviewRequest, request: Request) -> dict[str, Any]:
    state = app_state(request)
    store = state.store
    record = await store.get(decision_id)
    if record is None:
        raise ProblemError(404, "No such decision", decision_id)
    engines = state.holder.active
    if engines is None:
        raise ProblemError(503, "Not ready", "No policy is loaded.", headers={"Retry-After": "5"})
    try:
        engine = engines.get(str(record["policy"]["id"]))
    except PolicyNotFoundError as exc:
        raise ProblemError(
            409,
            "Policy no longer loaded",
            f"{exc}; the decision's workflow cannot continue until it is loaded again",
        ) from exc
    handoffs = engine.after_review(record, body.category, reviewer=body.reviewer)
    outcome = ReviewOutcome(
        decision_id=decision_id,
        category=body.category.value,
        note=body.note,
        reviewer=body.reviewer,
        created_at=now_iso(),
    )
    await store.add_review(outcome, handoffs)
    if state.dispatcher is not None:
        state.dispatcher.nudge()
    return {**asdict(outcome), "handoffs": [h.idempotency_key for h in handoffs]}


@router.get(
    "/reviews/export",
    summary="Reviewed decisions as labelled CSV (text,label) for evaluation",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "example": "id,text,label,source\n"
                    "3f1c…,I got a rash after the pills,"
                    "safety_compliance,review\n"
                }
            }
        }
    },
)
async def export(request: Request, limit: int = Query(default=10_000, ge=1, le=100_000)) -> str:
    rows = await app_state(request).store.labelled(limit)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "label", "source"])
    for decision_id, text, label in rows:
        writer.writerow([decision_id, text, label, "review"])
    return out.getvalue()
