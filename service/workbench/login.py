"""Logging in and out of the workbench.

With authentication on, a person pastes the API key operations gave them (``switchboard keys
create``; an SSO token works too): it is checked by the same ``AccessControl`` as an API call and
kept in the session cookie (see ``access``). With authentication off (``make run``, loopback
only), they pick the role to act as.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from service.access.principal import Role
from service.problems import ProblemError
from service.state import app_state
from service.workbench.access import (
    CSRF_COOKIE,
    DEV_PREFIX,
    SESSION_COOKIE,
    csrf_check,
    set_cookie,
)
from service.workbench.render import render

router = APIRouter()
log = logging.getLogger("switchboard.workbench")


def _safe_next(next_path: str) -> str:
    """Only a path of this site (no ``//host`` or scheme): no open redirect after login."""
    if not next_path.startswith("/") or next_path.startswith("//") or "\\" in next_path:
        return "/"
    return next_path


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    return render(request, None, "login.html", next=_safe_next(next), roles=list(Role), error=None)


@router.post("/login", dependencies=[Depends(csrf_check)])
async def login(
    request: Request,
    next: Annotated[str, Form()] = "/",
    key: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
) -> Response:
    access = app_state(request).access
    target = _safe_next(next)
    if access.auth_off:
        if role not in {r.value for r in Role}:
            return render(
                request,
                None,
                "login.html",
                status_code=422,
                next=target,
                roles=list(Role),
                error="Pick the role to act as.",
            )
        session = f"{DEV_PREFIX}{role}"
    else:
        session = key.strip()
        try:
            principal = await access.authenticate(f"Bearer {session}")
        except ProblemError:
            return render(
                request,
                None,
                "login.html",
                status_code=401,
                next=target,
                roles=list(Role),
                error="That key is unknown, revoked or mistyped. Ask operations for a new one.",
            )
        log.info(
            "workbench login",
            extra={
                "fields": {
                    "event": "workbench_login",
                    "subject": principal.subject,
                    "tenant": principal.tenant,
                    "role": principal.role,
                }
            },
        )
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, session)
    return response


@router.post("/logout", dependencies=[Depends(csrf_check)])
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")  # a new token with the next session
    return response
