"""Audit and review: stored decisions, the review queue, reviewer outcomes, labelled export.

A reviewer claims a case (``/reviews/{id}/claim``) so nobody else works it, and resolves it;
both go through ``service.reviews``, the path the workbench's case page uses too: the outcome
continues the reviewed category's workflow from its ``after_review`` step and is committed with
the hand-offs that implies in one transaction, then delivered like any other hand-off.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from service import reviews
from service.access.control import Caller
from service.access.guard import requires
from service.access.principal import Permission
from service.api import ReviewRequest
from service.problems import documented
from service.reviews import audit_access, visible
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
    "tenant": "acme",
    "region": "eu",
    "reviews": [_REVIEW],
    "handoffs": [],
}


_ACCESS = {
    401: "No, unknown or revoked credential",
    403: "The credential's role may not do this",
    421: "The tenant's data lives in another region",
}


@router.get(
    "/decisions/{decision_id}",
    summary="The stored (redacted) decision record",
    responses=documented({**_ACCESS, 404: "No such decision"}, example=_RECORD),
)
async def get_decision(
    decision_id: str, caller: Annotated[Caller, requires(Permission.READ_DECISIONS)]
) -> dict[str, Any]:
    tenant, store = caller.scoped()
    record = await visible(caller, decision_id)
    reviews = await store.reviews_for(decision_id)
    handoffs = await store.handoffs_for(decision_id)
    await audit_access(caller, "read_decision", [decision_id])
    return {
        "record": record,
        "tenant": tenant.id,
        "region": tenant.region,
        "reviews": [asdict(r) for r in reviews],
        "handoffs": [asdict(h) for h in handoffs],
    }


@router.get(
    "/reviews",
    summary="Decisions awaiting human review in the caller's queues, oldest first",
    responses=documented(_ACCESS, example={"pending": [_PENDING]}),
)
async def pending(
    caller: Annotated[Caller, requires(Permission.LIST_REVIEWS)],
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    tenant, store = caller.scoped()
    items = await store.pending_reviews(
        limit, tenant=tenant.id, queues=caller.principal.review_queues()
    )
    await audit_access(caller, "list_reviews", [i.decision_id for i in items])
    return {"pending": [asdict(i) for i in items]}


@router.post(
    "/reviews/{decision_id}",
    status_code=201,
    summary="Record a reviewer's outcome; the reviewer is the credential's subject",
    responses=documented(
        {
            **_ACCESS,
            400: "Malformed JSON or not UTF-8",
            404: "No such decision",
            409: "The decision's policy is no longer loaded",
            413: "Body too large",
        },
        example={**_REVIEW, "handoffs": [f"{_PENDING['decision_id']}:report_to_safety_db"]},
        status=201,
    ),
)
async def review(
    decision_id: str,
    body: ReviewRequest,
    request: Request,
    caller: Annotated[Caller, requires(Permission.RESOLVE_REVIEWS)],
) -> dict[str, Any]:
    done = await reviews.resolve(app_state(request), caller, decision_id, body.category, body.note)
    return {**asdict(done.outcome), "handoffs": [h.idempotency_key for h in done.handoffs]}


_CLAIM = {
    "decision_id": _PENDING["decision_id"],
    "holder": "pv-specialist-7",
    "claimed_at": "2026-11-23T13:00:00.000000+00:00",
    "expires_at": "2026-11-23T13:15:00.000000+00:00",
}


@router.post(
    "/reviews/{decision_id}/claim",
    summary="Claim a case so no other reviewer works it (renews the caller's own claim)",
    responses=documented(
        {
            **_ACCESS,
            404: "No such decision",
            409: "Another reviewer holds a live claim",
        },
        example=_CLAIM,
    ),
)
async def claim_case(
    decision_id: str,
    request: Request,
    caller: Annotated[Caller, requires(Permission.RESOLVE_REVIEWS)],
) -> dict[str, Any]:
    return asdict(await reviews.claim(app_state(request), caller, decision_id))


@router.delete(
    "/reviews/{decision_id}/claim",
    status_code=204,
    summary="Release the caller's claim on a case",
    responses=documented(
        {**_ACCESS, 404: "No such decision", 409: "Another reviewer holds the claim"}
    ),
)
async def release_case(
    decision_id: str, caller: Annotated[Caller, requires(Permission.RESOLVE_REVIEWS)]
) -> Response:
    await reviews.release(caller, decision_id)
    return Response(status_code=204)


_EXPORT_COLUMNS = (
    "id",
    "text",
    "label",
    "source",
    "channel",
    "reviewer",
    "reviewed_at",
    "decided",
    "policy_revision",
)


@router.get(
    "/reviews/export",
    summary="The tenant's reviewed decisions as labelled CSV for evaluation, with each label's "
    "reviewer and time (the reviewer loop: docs/evaluation.md)",
    response_class=PlainTextResponse,
    responses={
        **documented(_ACCESS),
        200: {
            "content": {
                "text/plain": {
                    "example": ",".join(_EXPORT_COLUMNS) + "\n"
                    "3f1c…,I got a rash after the pills,safety_compliance,review,chat,"
                    "pv-specialist-7,2026-11-23T13:10:00+00:00,informational,ae813cfa9d05837d\n"
                }
            }
        },
    },
)
async def export(
    caller: Annotated[Caller, requires(Permission.EXPORT)],
    limit: int = Query(default=10_000, ge=1, le=100_000),
) -> str:
    tenant, store = caller.scoped()
    rows = await store.labelled(limit, tenant=tenant.id)
    await audit_access(caller, "export", [r.decision_id for r in rows])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_EXPORT_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.decision_id,
                r.text,
                r.label,
                "review",
                r.channel,
                r.reviewer,
                r.reviewed_at,
                r.decided,
                r.policy_revision,
            ]
        )
    return out.getvalue()
