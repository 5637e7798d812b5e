"""The shadow page: run a candidate policy in shadow, read its report, stop or promote it.

Admins start, stop and promote, each after a confirmation step, and read every tenant's counts;
a person who reads a tenant's decisions (client, reviewer, auditor) opens ``/shadow/tenant`` for
that tenant's report with its example messages. Both call ``service.shadow.operations``, like
the API. The report is the partial ``shadow_report.html``; another page shows it with
``report_context``: ``{% include "shadow_report.html" %}`` with that context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.errors import PolicyError
from service.access.control import Caller
from service.access.principal import Permission
from service.problems import ProblemError
from service.shadow.operations import promote_shadow, shadow_report, start_shadow, stop_shadow
from service.state import app_state
from service.workbench.access import csrf_check, page_caller
from service.workbench.render import render

router = APIRouter()
Admin = Annotated[Caller, page_caller(Permission.OPERATE)]
ACTIONS = {
    "start": "Start the shadow run",
    "stop": "Stop the shadow run",
    "promote": "Promote the candidate",
}


async def report_context(request: Request, caller: Caller) -> dict[str, Any]:
    """What ``shadow_report.html`` reads: the report as ``caller`` may see it (None: no run)."""
    state = app_state(request)
    report = await shadow_report(state, caller, with_own_examples=True)
    return {"shadow": report, "shadow_may_operate": caller.principal.may(Permission.OPERATE)}


async def _page(
    request: Request,
    caller: Caller,
    *,
    status_code: int = 200,
    confirm: dict[str, str] | None = None,
    problem: str | None = None,
    problems: list[str] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    state = app_state(request)
    return render(
        request,
        caller,
        "shadow.html",
        status_code=status_code,
        running=state.shadow.run,
        sample_rate=state.settings.shadow_sample_rate,
        confirm=confirm,
        problem=problem,
        problems=problems or [],
        notice=notice or request.query_params.get("done"),
        **await report_context(request, caller),
    )


@router.get("/shadow")
async def page(request: Request, caller: Admin) -> HTMLResponse:
    return await _page(request, caller)


@router.get("/shadow/tenant")
async def tenant_page(
    request: Request, caller: Annotated[Caller, page_caller(Permission.READ_DECISIONS)]
) -> HTMLResponse:
    return render(request, caller, "shadow_tenant.html", **await report_context(request, caller))


@router.get("/shadow/partial")
async def report_partial(request: Request, caller: Admin) -> HTMLResponse:
    """The report alone, for the page's periodic refresh (htmx)."""
    return render(request, caller, "shadow_report.html", **await report_context(request, caller))


@router.post("/shadow/start", dependencies=[Depends(csrf_check)])
async def start(
    request: Request,
    caller: Admin,
    directory: Annotated[str, Form(min_length=1, max_length=4096)],
    sample_rate: Annotated[float, Form(ge=0, le=1)],
    confirmed: Annotated[str, Form()] = "",
) -> Response:
    if confirmed != "yes":
        confirm = {"action": "start", "directory": directory, "sample_rate": f"{sample_rate:g}"}
        return await _page(request, caller, confirm=confirm)
    try:
        await start_shadow(
            app_state(request),
            Path(directory),
            by=caller.principal.subject,
            sample_rate=sample_rate,
        )
    except PolicyError as exc:
        problems = [str(p) for p in exc.problems]
        return await _page(
            request,
            caller,
            status_code=422,
            problem="The candidate does not build; nothing was started.",
            problems=problems,
        )
    except ProblemError as exc:
        return await _page(request, caller, status_code=exc.status, problem=exc.detail)
    return RedirectResponse("/shadow?done=started", status_code=303)


@router.post("/shadow/stop", dependencies=[Depends(csrf_check)])
async def stop(request: Request, caller: Admin, confirmed: Annotated[str, Form()] = "") -> Response:
    if confirmed != "yes":
        return await _page(request, caller, confirm={"action": "stop"})
    try:
        await stop_shadow(app_state(request))
    except ProblemError as exc:
        return await _page(request, caller, status_code=exc.status, problem=exc.detail)
    return RedirectResponse("/shadow?done=stopped", status_code=303)


@router.post("/shadow/promote", dependencies=[Depends(csrf_check)])
async def promote(
    request: Request, caller: Admin, confirmed: Annotated[str, Form()] = ""
) -> Response:
    if confirmed != "yes":
        return await _page(request, caller, confirm={"action": "promote"})
    try:
        await promote_shadow(app_state(request), by=caller.principal.subject)
    except PolicyError as exc:
        problems = [str(p) for p in exc.problems]
        return await _page(
            request,
            caller,
            status_code=422,
            problem="The candidate no longer builds; the active revision keeps serving.",
            problems=problems,
        )
    except ProblemError as exc:
        return await _page(request, caller, status_code=exc.status, problem=exc.detail)
    return RedirectResponse("/shadow?done=promoted", status_code=303)
