"""The decision explorer: search recorded decisions, page through them, export them as CSV,
and read one decision as words.

The pages call the same search, export and scoped reads as the API (``service.routes.search``,
``service.reviews``), so what a page shows is what ``GET /decisions`` answers, and every
read lands in the access audit the same way. Filters arrive as the form's query string: a bad
value is shown on the page next to its field, never as a JSON 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from engine.categories import Category
from service.access.control import Caller
from service.access.principal import Permission
from service.audit import Cursor, CursorError, DecisionFilter, ReviewState
from service.reviews import audit_access, visible
from service.routes.search import EXPORT_MAX_ROWS, csv_export, find
from service.state import app_state
from service.workbench.access import page_caller
from service.workbench.explain import probability_bars, step_in_words
from service.workbench.render import render

router = APIRouter()

# Short names for a table (the case page's ``explain.label`` explains each category at length).
CATEGORY_NAMES = {
    "informational": "informational",
    "service_action": "service action",
    "safety_compliance": "safety & compliance",
}

PAGE_SIZE = 50
COUNT_CAP = 10_000  # "10,000+ match": counting further costs time and changes no decision
LABELS = {
    "since": "From",
    "until": "Until",
    "category": "Category",
    "review": "Review",
    "policy_revision": "Policy revision",
    "rule": "Rule fired",
    "degraded": "Degraded",
    "cursor": "Page",
}
REVIEW_NAMES = {
    ReviewState.PENDING: "pending",
    ReviewState.REVIEWED: "reviewed",
    ReviewState.NOT_NEEDED: "not needed",
}


def category_name(value: str | None) -> str:
    return CATEGORY_NAMES.get(value or "", value or "none")


def workflow_in_words(record: dict[str, Any]) -> str:
    """What the category's workflow did and what happens next."""
    workflow = record.get("workflow") or {}
    done = workflow.get("completed") or []
    status = workflow.get("status", "")
    head = f"The {category_name(workflow.get('name'))} workflow"
    head += f" ran {', '.join(done)}" if done else " ran no step yet"
    nxt = workflow.get("next_step")
    due = workflow.get("sla_due_at")
    if status == "awaiting_review":
        tail = f"; it waits for a person in the {workflow.get('queue')} queue at step {nxt}"
        tail += f", due {due}." if due else "."
    elif status == "dispatched":
        tail = f"; it handed the case on at step {nxt}." if nxt else "; it handed the case on."
    elif status == "completed":
        tail = "; it is complete."
    else:
        tail = f"; status {status}, next step {nxt}."
    return head + tail


def _typed(request: Request) -> dict[str, str]:
    """The filter fields as typed."""
    return {name: request.query_params.get(name, "") for name in DecisionFilter.model_fields}


def _form_values(request: Request, flt: DecisionFilter | None) -> dict[str, str]:
    """What the form shows: the filter in the form's own terms (times in UTC, as a
    ``datetime-local`` input takes them), or what was typed when it is invalid."""
    if flt is None:
        return _typed(request)
    values = dict.fromkeys(DecisionFilter.model_fields, "")
    values.update(flt.query_params())
    for name in ("since", "until"):
        moment = getattr(flt, name)
        if moment is not None:
            values[name] = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return values


_TIME_HINT = "is not a date and time; pick one in the field (UTC)"
_MESSAGES = {
    "category": "must be one of: "
    + ", ".join(category_name(c.value) for c in Category)
    + " (or Any)",
    "review": "must be pending, reviewed or not needed (or Any)",
    "degraded": "must be yes or no (or Any)",
    "since": _TIME_HINT,
    "until": _TIME_HINT,
}


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, sentence) for each problem, naming the field as the form labels it and what
    was typed; a check across fields (the time range) is reported on ``until``."""
    out = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "until"
        if not err["loc"]:
            message = str(err["msg"]).removeprefix("Value error, ")
            message = message.replace("'until'", "Until").replace("'since'", "From")
            out.append((field, f"Time range: {message}"))
            continue
        message = _MESSAGES.get(field) or str(err["msg"])
        if err["type"] == "string_too_long":
            message = str(err["msg"])
        given = err.get("input")
        shown = f" (you gave “{given[:80]}”)" if isinstance(given, str) else ""
        label = LABELS.get(field, field)
        out.append((field, f"{label}{shown} {message}" if shown else f"{label} {message}"))
    return out


def parse_filter(request: Request) -> tuple[DecisionFilter | None, list[tuple[str, str]]]:
    try:
        return DecisionFilter.model_validate(_typed(request)), []
    except ValidationError as exc:
        return None, _errors(exc)


def _choices(request: Request, caller: Caller) -> dict[str, list[str]]:
    """Revisions and rule ids of the tenant's policies loaded now: suggestions, not a closed
    list (an older revision's decisions are in the store too)."""
    tenant, _ = caller.scoped()
    active = app_state(request).holder.active
    revisions: set[str] = set()
    rules: set[str] = set()
    for policy_id, engine in active.engines.items() if active else ():
        if not tenant.allows(policy_id):
            continue
        revisions.add(engine.loaded.revision)
        rules.update(rule.id for rule in engine.policy.rules)
    return {"revisions": sorted(revisions), "rules": sorted(rules)}


def _explorer(
    request: Request,
    caller: Caller,
    flt: DecisionFilter | None,
    *,
    status_code: int = 200,
    errors: list[tuple[str, str]] | None = None,
    **results: Any,
) -> Response:
    return render(
        request,
        caller,
        "explorer.html",
        status_code=status_code,
        values=_form_values(request, flt),
        errors=errors or [],
        invalid={field for field, _ in errors or []},
        categories=[(c.value, category_name(c.value)) for c in Category],
        review_states=[(s.value, REVIEW_NAMES[s]) for s in ReviewState],
        may_export=caller.principal.may(Permission.EXPORT),
        export_cap=EXPORT_MAX_ROWS,
        category_name=category_name,
        review_names={s.value: n for s, n in REVIEW_NAMES.items()},
        **_choices(request, caller),
        **{"page": None, "matched": 0, "count_cap": COUNT_CAP, "query": {}, **results},
    )


@router.get("/explorer")
async def explorer(
    request: Request, caller: Annotated[Caller, page_caller(Permission.READ_DECISIONS)]
) -> Response:
    flt, errors = parse_filter(request)
    after: Cursor | None = None
    token = request.query_params.get("cursor")
    if token:
        try:
            after = Cursor.parse(token)
        except CursorError as exc:
            errors.append(("cursor", f"Page: {exc}; start again from the first page"))
    if flt is None or errors:
        return _explorer(request, caller, flt, status_code=422, errors=errors)
    tenant, store = caller.scoped()
    queues = caller.principal.decision_queues()
    page = await find(caller, flt, PAGE_SIZE, after)
    matched = await store.count_matching(flt, COUNT_CAP + 1, tenant=tenant.id, queues=queues)
    query = flt.query_params()
    return _explorer(
        request, caller, flt, page=page, matched=matched, query=query, paged=after is not None
    )


@router.get("/explorer/export.csv")
async def export(
    request: Request, caller: Annotated[Caller, page_caller(Permission.EXPORT)]
) -> Response:
    flt, errors = parse_filter(request)
    if flt is None:
        return _explorer(request, caller, flt, status_code=422, errors=errors)
    return await csv_export(caller, flt, EXPORT_MAX_ROWS)


@router.get("/explorer/decisions/{decision_id}")
async def decision(
    request: Request,
    decision_id: str,
    caller: Annotated[Caller, page_caller(Permission.READ_DECISIONS)],
) -> Response:
    _, store = caller.scoped()
    record = await visible(caller, decision_id)
    reviews = await store.reviews_for(decision_id)
    handoffs = await store.handoffs_for(decision_id)
    await audit_access(caller, "read_decision", [decision_id])
    if reviews:
        state = REVIEW_NAMES[ReviewState.REVIEWED]
    elif record.get("requires_human_review"):
        state = REVIEW_NAMES[ReviewState.PENDING]
    else:
        state = REVIEW_NAMES[ReviewState.NOT_NEEDED]
    steps = record.get("decision_path") or []
    return render(
        request,
        caller,
        "decision.html",
        record=record,
        review_state=state,
        path=[(step_in_words(step, record), step) for step in steps],
        bars=probability_bars(record),
        workflow=workflow_in_words(record),
        reviews=reviews,
        handoffs=handoffs,
        category_name=category_name,
    )
