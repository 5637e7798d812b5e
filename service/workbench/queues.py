"""Review queues and the case page: claim a case, confirm or change its category, with a note.

One list per queue the caller may work (the queues come from the policies' workflows), ordered
by SLA deadline: the decision's time plus its category workflow's ``sla_hours``. Claiming,
releasing and resolving call ``service.reviews``, the code behind the API's ``/reviews`` routes,
so the outcome continues the workflow exactly as an API review does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine import Category
from engine.errors import PolicyNotFoundError
from engine.policy.model import Policy
from service import reviews
from service.access.control import Caller
from service.access.principal import Permission
from service.audit import Claim, PendingReview
from service.state import AppState, app_state
from service.workbench import explain
from service.workbench.access import csrf_check, page_caller
from service.workbench.render import render

router = APIRouter()
QUEUE_LIMIT = 500


@dataclass(frozen=True)
class QueueRow:
    """One pending case as its queue lists it."""

    decision_id: str
    queue: str | None
    received: str
    category: str
    deadline: datetime | None
    left: str
    overdue: bool
    claim: Claim | None


@dataclass(frozen=True)
class Queue:
    name: str
    title: str
    rows: list[QueueRow]


def time_left(deadline: datetime | None, now: datetime) -> tuple[str, bool]:
    """ "3 h 12 min left" or "overdue by 40 min" (and whether overdue); no deadline: no SLA."""
    if deadline is None:
        return "no SLA", False
    seconds = (deadline - now).total_seconds()
    minutes = int(abs(seconds) // 60)
    span = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    return (f"{span} left", False) if seconds >= 0 else (f"overdue by {span}", True)


def queue_rows(
    pending: list[PendingReview],
    claims: dict[str, Claim],
    sla: dict[str, float | None],
    now: datetime,
) -> list[QueueRow]:
    """Soonest deadline first; cases without an SLA after those with one, oldest first."""
    rows = []
    for item in pending:
        hours = sla.get(item.category)
        received = datetime.fromisoformat(item.created_at)
        deadline = received + timedelta(hours=hours) if hours is not None else None
        left, overdue = time_left(deadline, now)
        rows.append(
            QueueRow(
                item.decision_id,
                item.queue,
                item.created_at,
                item.category,
                deadline,
                left,
                overdue,
                claims.get(item.decision_id),
            )
        )
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(rows, key=lambda r: (r.deadline or far, r.received))


def _policies(state: AppState, caller: Caller) -> list[Policy]:
    engines = state.holder.active
    if engines is None:
        return []
    tenant = caller.tenant
    return [e.policy for e in engines.all if tenant is None or tenant.allows(e.loaded.id)]


def _title(queue: str) -> str:
    return queue.replace("_", " ").capitalize()


@router.get("/queues")
async def queues(
    request: Request, caller: Annotated[Caller, page_caller(Permission.LIST_REVIEWS)]
) -> HTMLResponse:
    state = app_state(request)
    tenant, store = caller.scoped()
    policies = _policies(state, caller)
    mine = caller.principal.review_queues()
    names = [q for q in explain.review_queues(policies) if mine is None or q in mine]
    pending = await store.pending_reviews(QUEUE_LIMIT, tenant=tenant.id, queues=frozenset(names))
    claims = await store.live_claims(tenant=tenant.id)
    sla = {c.value: explain.sla_hours(policies, c.value) for c in Category}
    rows = queue_rows(pending, claims, sla, datetime.now(timezone.utc))
    await reviews.audit_access(caller, "list_reviews", [r.decision_id for r in rows])
    lists = [Queue(name, _title(name), [r for r in rows if r.queue == name]) for name in names]
    return render(
        request,
        caller,
        "queues.html",
        queues=lists,
        may_resolve=caller.principal.may(Permission.RESOLVE_REVIEWS),
        done=request.query_params.get("done"),
    )


@router.get("/cases/{decision_id}")
async def case(
    decision_id: str,
    request: Request,
    caller: Annotated[Caller, page_caller(Permission.LIST_REVIEWS)],
) -> HTMLResponse:
    return await _case_page(request, caller, decision_id)


async def _case_page(
    request: Request, caller: Caller, decision_id: str, *, problem: str | None = None
) -> HTMLResponse:
    state = app_state(request)
    _, store = caller.scoped()
    record = await reviews.visible(caller, decision_id)
    claim = await store.claim_of(decision_id)
    past = await store.reviews_for(decision_id)
    await reviews.audit_access(caller, "read_decision", [decision_id])
    policy = _policy_of(state, record)
    workflow = record.get("workflow") or {}
    policies = [policy] if policy is not None else []
    hours = explain.sla_hours(policies, str(record["category"]))
    deadline = (
        datetime.fromisoformat(str(record["created_at"])) + timedelta(hours=hours)
        if hours is not None
        else None
    )
    left, overdue = time_left(deadline, datetime.now(timezone.utc))
    groups = policy.keyword_groups if policy is not None else {}
    keyword_groups = {
        name: groups[name].description if name in groups else ""
        for name in record.get("keywords_matched") or []
    }
    me = caller.principal.subject
    return render(
        request,
        caller,
        "case.html",
        status_code=409 if problem else 200,
        record=record,
        workflow=workflow,
        queue_title=_title(str(workflow.get("queue") or "")),
        path=[explain.step_in_words(step, record) for step in record.get("decision_path", [])],
        bars=explain.probability_bars(record),
        label=explain.label,
        next_steps=explain.next_steps(policy, str(record["category"])),
        keyword_groups=keyword_groups,
        deadline=deadline,
        left=left,
        overdue=overdue,
        claim=claim,
        mine=claim is not None and claim.holder == me,
        may_resolve=caller.principal.may(Permission.RESOLVE_REVIEWS),
        reviewed=past,
        categories=[c.value for c in Category],
        problem=problem,
    )


def _policy_of(state: AppState, record: dict[str, Any]) -> Policy | None:
    engines = state.holder.active
    if engines is None:
        return None
    try:
        return engines.get(str(record["policy"]["id"])).policy
    except PolicyNotFoundError:
        return None


@router.post("/cases/{decision_id}/claim", dependencies=[Depends(csrf_check)])
async def claim(
    decision_id: str,
    request: Request,
    caller: Annotated[Caller, page_caller(Permission.RESOLVE_REVIEWS)],
) -> Response:
    try:
        await reviews.claim(app_state(request), caller, decision_id)
    except reviews.ClaimHeldError as exc:
        return await _case_page(request, caller, decision_id, problem=exc.detail)
    return RedirectResponse(f"/cases/{decision_id}", status_code=303)


@router.post("/cases/{decision_id}/release", dependencies=[Depends(csrf_check)])
async def release(
    decision_id: str,
    caller: Annotated[Caller, page_caller(Permission.RESOLVE_REVIEWS)],
) -> Response:
    await reviews.release(caller, decision_id)
    return RedirectResponse("/queues", status_code=303)


@router.post("/cases/{decision_id}/resolve", dependencies=[Depends(csrf_check)])
async def resolve(
    decision_id: str,
    request: Request,
    caller: Annotated[Caller, page_caller(Permission.RESOLVE_REVIEWS)],
    category: Annotated[Category, Form()],
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        await reviews.resolve(app_state(request), caller, decision_id, category, note)
    except reviews.ClaimHeldError as exc:
        return await _case_page(request, caller, decision_id, problem=exc.detail)
    return RedirectResponse(f"/queues?done={decision_id}", status_code=303)
