"""Rendering a page: the template, the caller, their menu, the CSRF token and safe headers.

Templates are Jinja2 files in ``templates/`` (autoescaped, undefined names fail loudly). Every
page gets ``caller`` (None on the login page), ``nav`` (the links the caller's role may open),
``csrf`` (for hidden ``csrf`` fields) and ``auth_off``. Pages are sent with a Content-Security-
Policy that allows scripts, styles, images and fetches from this server only: JavaScript lives in
``static/`` (no inline ``<script>``; inline ``style`` attributes are allowed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from service.access.control import Caller
from service.problems import ProblemError
from service.workbench.access import CSRF_COOKIE, LoginRequiredError, csrf_token, set_cookie
from service.workbench.nav import NAV, NavLink

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show case data: not for shared caches or back buttons
}


class PageTemplates:
    """The Jinja2 environment of the workbench's templates (one per app)."""

    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )


def nav_for(caller: Caller | None) -> list[NavLink]:
    if caller is None:
        return []
    return [link for link in NAV if caller.principal.may(link.permission)]


def render(
    request: Request,
    caller: Caller | None,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for ``caller``, with the menu, the CSRF token and the headers."""
    templates: PageTemplates = request.app.state.workbench_templates
    state = getattr(request.app.state, "switchboard", None)
    csrf = csrf_token(request)
    html = templates.env.get_template(template).render(
        request=request,
        caller=caller,
        nav=nav_for(caller),
        here=request.url.path,
        csrf=csrf,
        auth_off=bool(state and state.access.auth_off),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    if request.cookies.get(CSRF_COOKIE) != csrf:
        set_cookie(request, response, CSRF_COOKIE, csrf)
    return response


def problem_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    """An error as a page (a browser asked for HTML), with a way back."""
    return render(
        request, None, "problem.html", status_code=status, status=status, title=title, detail=detail
    )


def page_problem(request: Request, exc: ProblemError) -> Response | None:
    """A workbench page's problem for a browser (it asked for HTML): the login for one without
    a session, else the problem as a page. None for the API, which answers problem+json."""
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    page = getattr(endpoint, "__module__", "").startswith("service.workbench.")
    if not page or "text/html" not in request.headers.get("accept", ""):
        return None
    if isinstance(exc, LoginRequiredError):
        return RedirectResponse(exc.location, status_code=303)
    return problem_page(request, exc.status, exc.title, exc.detail)
