"""Searching recorded decisions (``GET /decisions``) and exporting a search as CSV for
auditors (``GET /decisions.csv``).

Both read the caller's tenant only, and a reviewer only the decisions routed to their queues;
every page and every exported batch is recorded in the access audit before it leaves. The
workbench's decision explorer calls ``find`` and ``csv_export`` with its session's caller, so
the page and the API cannot drift apart.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import Example
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from engine.categories import Category
from service.access.control import Caller
from service.access.guard import requires
from service.access.principal import Permission
from service.audit import (
    Cursor,
    CursorError,
    DecisionFilter,
    DecisionSummary,
    ReviewState,
    SearchPage,
)
from service.problems import ProblemError, documented
from service.reviews import audit_access

router = APIRouter(tags=["audit and review"])

PAGE_MAX = 500
EXPORT_MAX_ROWS = 50_000
_EXPORT_BATCH = 500
CSV_COLUMNS = (
    "decision_id",
    "created_at",
    "channel",
    "category",
    "confidence",
    "review_state",
    "reviewed_category",
    "review_queue",
    "policy_id",
    "policy_revision",
    "rules_fired",
    "degraded",
    "input_redacted",
)
_ACCESS = {
    401: "No, unknown or revoked credential",
    403: "The credential's role may not do this",
    421: "The tenant's data lives in another region",
}
_SUMMARY = {
    "decision_id": "acme-3f1c0a9e5b2d4c8f9a7e6d5c4b3a2910",
    "created_at": "2026-11-23T12:00:00.000000+00:00",
    "channel": "chat",
    "category": "safety_compliance",
    "confidence": 0.93,
    "review_state": "pending",
    "reviewed_category": None,
    "review_queue": "pharmacovigilance",
    "policy_id": "contact-center",
    "policy_revision": "ae813cfa9d05837d",
    "rules_fired": ["adverse_event_keywords"],
    "degraded": False,
    "input_redacted": "I got a rash after the pills, call me on <PHONE_NUMBER>",
}
_CSV_EXAMPLE = (
    ",".join(CSV_COLUMNS) + "\n"
    "acme-3f1c…,2026-11-23T12:00:00.000000+00:00,chat,safety_compliance,0.93,pending,,"
    "pharmacovigilance,contact-center,ae813cfa9d05837d,adverse_event_keywords,false,"
    '"I got a rash after the pills, call me on <PHONE_NUMBER>"\n'
)


def _describe(name: str) -> Any:
    """A query parameter documented from the filter's own field (one description)."""
    field = DecisionFilter.model_fields[name]
    examples = {"example": Example(value=(field.examples or [None])[0])}
    return Query(description=field.description, openapi_examples=examples)


def decision_filter(
    request: Request,
    since: Annotated[datetime | None, _describe("since")] = None,
    until: Annotated[datetime | None, _describe("until")] = None,
    category: Annotated[Category | None, _describe("category")] = None,
    review: Annotated[ReviewState | None, _describe("review")] = None,
    policy_revision: Annotated[str | None, _describe("policy_revision")] = None,
    rule: Annotated[str | None, _describe("rule")] = None,
    degraded: Annotated[bool | None, _describe("degraded")] = None,
) -> DecisionFilter:
    """The filter from the query string; a check across fields fails as a 422 like any other.
    The times go to the filter as sent: FastAPI reads "0.5" as a Unix time, the filter refuses
    anything but ISO 8601, as documented."""
    query = request.query_params
    try:
        return DecisionFilter(
            since=query.get("since") if since is not None else None,
            until=query.get("until") if until is not None else None,
            category=category,
            review=review,
            policy_revision=policy_revision,
            rule=rule,
            degraded=degraded,
        )
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
        ) from exc


def parse_cursor(token: str | None) -> Cursor | None:
    if not token:
        return None
    try:
        return Cursor.parse(token)
    except CursorError as exc:
        raise ProblemError(
            422, "Invalid request", problems=[f"query.cursor: {exc}; start from the first page"]
        ) from exc


async def find(caller: Caller, flt: DecisionFilter, limit: int, after: Cursor | None) -> SearchPage:
    """One page of the caller's search, recorded in the access audit."""
    tenant, store = caller.scoped()
    page = await store.search(
        flt, limit, after=after, tenant=tenant.id, queues=caller.principal.decision_queues()
    )
    await audit_access(caller, "search_decisions", [i.decision_id for i in page.items])
    return page


def _cell(value: str) -> str:
    # A spreadsheet runs a cell that starts like a formula; the redacted text is customer input.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(item: DecisionSummary) -> list[str]:
    return [
        item.decision_id,
        item.created_at,
        item.channel,
        item.category,
        "" if item.confidence is None else f"{item.confidence:.4f}",
        item.review_state.value,
        item.reviewed_category or "",
        item.review_queue or "",
        item.policy_id,
        item.policy_revision,
        ";".join(item.rules_fired),
        "true" if item.degraded else "false",
        _cell(item.input_redacted),
    ]


async def csv_export(caller: Caller, flt: DecisionFilter, limit: int) -> StreamingResponse:
    """The search as CSV, newest first, streamed in batches of ``_EXPORT_BATCH`` rows.

    The export is a snapshot: without ``until`` it ends at the moment it starts, so the count
    in the headers is the number of rows that follow. Each batch is in the access audit before
    it is sent. ``Switchboard-Export-Truncated: true`` says the filter matched more than
    ``limit`` rows (narrow it, e.g. by time)."""
    tenant, store = caller.scoped()
    if flt.until is None:
        flt = flt.model_copy(update={"until": datetime.now(timezone.utc)})
    queues = caller.principal.decision_queues()
    matched = await store.count_matching(flt, limit + 1, tenant=tenant.id, queues=queues)

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield out.getvalue()
        sent, after = 0, None
        while sent < limit:
            page = await store.search(
                flt,
                min(_EXPORT_BATCH, limit - sent),
                after=after,
                tenant=tenant.id,
                queues=queues,
            )
            if not page.items:
                return
            await audit_access(caller, "export_decisions", [i.decision_id for i in page.items])
            out.seek(0)
            out.truncate()
            writer.writerows(csv_row(i) for i in page.items)
            yield out.getvalue()
            sent += len(page.items)
            if page.next is None:
                return
            after = page.next

    stamp = flt.until.strftime("%Y%m%dT%H%M%SZ") if flt.until else "now"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="decisions-{tenant.id}-{stamp}.csv"',
            "Switchboard-Export-Rows": str(min(matched, limit)),
            "Switchboard-Export-Truncated": "true" if matched > limit else "false",
        },
    )


@router.get(
    "/decisions",
    summary="Search the tenant's recorded decisions (a reviewer: those in their queues), "
    "newest first, one page at a time",
    description="All filters are optional and must all hold. Pages follow a keyset: pass the "
    "answer's `next_cursor` as `cursor` for the next page (null: this was the last one).",
    responses=documented(
        _ACCESS,
        example={"decisions": [_SUMMARY], "next_cursor": "WyIyMDI2LTExLTIzVDEy…"},
    ),
)
async def search(
    caller: Annotated[Caller, requires(Permission.READ_DECISIONS)],
    flt: Annotated[DecisionFilter, Depends(decision_filter)],
    cursor: Annotated[
        str | None,
        Query(description="The previous page's `next_cursor`; absent for the first page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Rows per page.")] = 50,
) -> dict[str, Any]:
    page = await find(caller, flt, limit, parse_cursor(cursor))
    return {
        "decisions": [{**asdict(i), "rules_fired": list(i.rules_fired)} for i in page.items],
        "next_cursor": page.next.token() if page.next else None,
    }


@router.get(
    "/decisions.csv",
    summary="Export the tenant's decisions that match the filters as CSV (auditors)",
    description=f"The same filters as `GET /decisions`, newest first, at most `limit` rows "
    f"(at most {EXPORT_MAX_ROWS}). The headers say how many rows follow "
    "(`Switchboard-Export-Rows`) and whether the filter matched more "
    "(`Switchboard-Export-Truncated`). Without `until` the export ends when it starts. A cell "
    "of redacted text that a spreadsheet would run as a formula starts with `'`.",
    response_class=StreamingResponse,
    responses={
        **documented(_ACCESS),
        200: {
            "content": {"text/csv": {"example": _CSV_EXAMPLE}},
            "headers": {
                "Switchboard-Export-Rows": {
                    "description": "Rows in this export",
                    "schema": {"type": "integer"},
                },
                "Switchboard-Export-Truncated": {
                    "description": "true: the filter matched more rows than `limit`",
                    "schema": {"type": "boolean"},
                },
            },
        },
    },
)
async def export(
    caller: Annotated[Caller, requires(Permission.EXPORT)],
    flt: Annotated[DecisionFilter, Depends(decision_filter)],
    limit: Annotated[
        int, Query(ge=1, le=EXPORT_MAX_ROWS, description="The most rows to export.")
    ] = EXPORT_MAX_ROWS,
) -> StreamingResponse:
    return await csv_export(caller, flt, limit)
