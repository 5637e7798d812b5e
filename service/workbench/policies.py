"""The policy page: what serves, who activated it, and (for admins) reload and rollback.

Compliance authors (``policies:try``) read it; only admins (``admin:operate``) see the reload
and rollback buttons, and each goes through a confirmation page before anything changes (plain
forms: no JavaScript needed). A button runs exactly what the API runs (``service.operations``).
A failed reload leaves the old revision serving; the page then shows the failure's problems,
each with its file and line, until a reload succeeds.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from engine.errors import PolicyError
from service.access.control import Caller
from service.access.principal import Permission
from service.operations import reload_policies, rollback_policies
from service.state import app_state
from service.workbench.access import csrf_check, page_caller
from service.workbench.policy_view import view
from service.workbench.render import render
from service.workbench.shadow import report_context

router = APIRouter()
Author = Annotated[Caller, page_caller(Permission.TRY_POLICIES)]
Admin = Annotated[Caller, page_caller(Permission.OPERATE)]
Operation = Literal["reload", "rollback"]
DONE = {
    "reloaded": "Reloaded: the policy directory was validated and is now serving.",
    "rolled-back": "Rolled back: the previous revision is serving again.",
    "nothing": "Nothing to roll back to: only one revision has been active in this replica.",
}


@router.get("/policies", response_class=HTMLResponse)
async def policies(request: Request, caller: Author, done: str = "") -> HTMLResponse:
    holder = app_state(request).holder
    active = holder.active
    return render(
        request,
        caller,
        "policies.html",
        provenance=holder.describe_active(),
        views=[view(e.loaded) for e in active.all] if active else [],
        failure=holder.status.log.last_failure() if holder.status.last_error else None,
        history=holder.status.log.items(),
        can_operate=caller.principal.may(Permission.OPERATE),
        can_roll_back=holder.previous is not None,
        done=DONE.get(done),
        # The shadow report (counts; examples only for who may read that tenant's decisions).
        **await report_context(request, caller),
    )


def _confirm(request: Request, caller: Caller, operation: Operation) -> HTMLResponse:
    holder = app_state(request).holder
    return render(
        request,
        caller,
        "policy_confirm.html",
        operation=operation,
        provenance=holder.describe_active(),
        previous=holder.previous.describe() if holder.previous else [],
        policies_dir=str(app_state(request).settings.policies),
    )


@router.get("/policies/reload", response_class=HTMLResponse)
async def confirm_reload(request: Request, caller: Admin) -> HTMLResponse:
    return _confirm(request, caller, "reload")


@router.get("/policies/rollback", response_class=HTMLResponse)
async def confirm_rollback(request: Request, caller: Admin) -> HTMLResponse:
    return _confirm(request, caller, "rollback")


@router.post("/policies/reload", dependencies=[Depends(csrf_check)])
async def reload(request: Request, caller: Admin) -> RedirectResponse:
    try:
        await reload_policies(app_state(request), by=caller.principal.subject)
    except PolicyError:
        # Recorded with its problems (status and log): the page shows them; nothing changed.
        return RedirectResponse("/policies#reload-failure", status_code=303)
    return RedirectResponse("/policies?done=reloaded", status_code=303)


@router.post("/policies/rollback", dependencies=[Depends(csrf_check)])
async def rollback(request: Request, caller: Admin) -> RedirectResponse:
    done = await rollback_policies(app_state(request), by=caller.principal.subject)
    return RedirectResponse(f"/policies?done={'rolled-back' if done else 'nothing'}", 303)
