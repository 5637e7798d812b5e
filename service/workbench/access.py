"""Who is using a page: the browser session, checked by the same ``AccessControl`` as the API.

The session is the credential itself, in an HttpOnly, SameSite=Strict cookie (Secure over
HTTPS), and every page request authenticates it exactly as the API authenticates a bearer
header. Why not a server-side session: revoking or rotating a key then logs its browser out on
the next click, several replicas need no shared session table, and there is no signing secret to
configure and rotate. The cookie is a session cookie (no Max-Age): closing the browser ends it.

With authentication off (``make run``, loopback only) the login page lets a developer pick one
role; the cookie then says ``dev:<role>`` and the principal is the dev tenant with that role.

Every POST form carries a ``csrf`` field equal to a random HttpOnly SameSite=Strict cookie
(double submit; ``X-CSRF-Token`` for htmx requests): a page of another site can neither read the
cookie nor, SameSite=Strict, make the browser send it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import Response

from service.access.control import DEV_TENANT, AccessControl, Caller
from service.access.principal import Permission, Principal, Role
from service.problems import ProblemError
from service.state import app_state

SESSION_COOKIE = "sb_session"
CSRF_COOKIE = "sb_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
DEV_PREFIX = "dev:"


class LoginRequiredError(ProblemError):
    """No valid session: a browser is sent to the login page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(401, "Log in first", "This page needs a signed-in session.")
        self.next_path = next_path

    @property
    def location(self) -> str:
        return f"/login?next={quote(self.next_path, safe='/')}"


def dev_principal(role: Role) -> Principal:
    """A development login's principal: the dev tenant, the one role picked, every queue."""
    return Principal(f"dev-{role.value}", DEV_TENANT, frozenset({role}), "auth-off")


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


async def session_principal(request: Request, access: AccessControl) -> Principal:
    """The principal of the browser's session cookie; ``LoginRequiredError`` when there is none."""
    session = request.cookies.get(SESSION_COOKIE)
    if not session:
        raise LoginRequiredError(_here(request))
    if access.auth_off:
        role = session.removeprefix(DEV_PREFIX)
        if not session.startswith(DEV_PREFIX) or role not in {r.value for r in Role}:
            raise LoginRequiredError(_here(request))
        return dev_principal(Role(role))
    if session.startswith(DEV_PREFIX):  # a development cookie once auth is on again
        raise LoginRequiredError(_here(request))
    try:
        return await access.authenticate(f"Bearer {session}")
    except ProblemError as exc:
        if exc.status == 401:  # revoked, rotated or unknown since the login
            raise LoginRequiredError(_here(request)) from exc
        raise


def page_caller(permission: Permission) -> Any:
    """The dependency a page declares: ``caller: Annotated[Caller, page_caller(Permission.X)]``.

    Anonymous: redirected to /login (and back). A role without ``permission``: 403 page.
    """

    async def page_authorized(request: Request) -> Caller:
        access = app_state(request).access
        return access.admit(await session_principal(request, access), permission)

    page_authorized.page_permission = permission  # type: ignore[attr-defined]
    page_authorized.__name__ = f"page_{permission.name.lower()}"
    return Depends(page_authorized)


def signed_in() -> Any:
    """Any signed-in principal, whatever its role (the home page)."""

    async def page_signed_in(request: Request) -> Principal:
        return await session_principal(request, app_state(request).access)

    page_signed_in.page_permission = "signed-in"  # type: ignore[attr-defined]
    return Depends(page_signed_in)


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (a new one when it has none; ``render`` sets the cookie)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


async def csrf_check(request: Request) -> None:
    """Every POST form: the ``csrf`` field (or ``X-CSRF-Token``) must equal the cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # parsed once; a route's Form() fields read the same
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise ProblemError(
            403,
            "Form expired",
            "The form's security token does not match this browser's. Reload the page and "
            "submit it again.",
        )


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
