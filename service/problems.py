"""Errors as application/problem+json, mapped to HTTP in one place."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import (
    AuditStoreError,
    MessageRejectedError,
    PolicyError,
    PolicyNotFoundError,
    SwitchboardError,
)
from service.api import Problem

MEDIA = "application/problem+json"
log = logging.getLogger("switchboard.service")


class ProblemError(SwitchboardError):
    """An HTTP answer decided by the service itself (413, 429, 503...), raised from a route.

    It lives here rather than in ``engine.errors`` because it is an HTTP status, not a domain
    error; it still derives from ``SwitchboardError``, so there is one hierarchy.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        problems: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.problems, self.headers = problems, headers


def problem_response(
    status: int,
    title: str,
    detail: str = "",
    *,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, media_type=MEDIA, headers=headers)


def documented(
    codes: dict[int, str], *, example: Any = None, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: problem+json answers by code, plus an example of success.

    422 is always there: a request that fails validation is answered with problem+json too
    (FastAPI's own 422 entry would say application/json).
    """
    out: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem, "content": {MEDIA: {}}, "description": description}
        for code, description in {422: "Invalid request", **codes}.items()
    }
    if example is not None:
        out[status] = {"content": {"application/json": {"example": example}}}
    return out


def _validation_detail(exc: RequestValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        out.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return out


# The workbench's answer to a ``ProblemError`` raised by one of its pages (an HTML page, or the
# login for a browser without a session); None leaves the problem+json answer.
PageProblem = Callable[[Request, ProblemError], "Response | None"]


def install_problem_handlers(app: FastAPI, *, pages: PageProblem | None = None) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        page = pages(request, exc) if pages is not None else None
        if page is not None:  # a browser on a workbench page: a page, or the login
            return page
        return problem_response(
            exc.status, exc.title, exc.detail, problems=exc.problems, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _validation_detail(exc)
        if any("JSON decode error" in p or "json_invalid" in p for p in problems):
            return problem_response(
                400, "Malformed JSON", "The body is not valid UTF-8 JSON.", problems=problems
            )
        return problem_response(422, "Invalid request", problems=problems)

    @app.exception_handler(PolicyNotFoundError)
    async def _unknown_policy(_: Request, exc: PolicyNotFoundError) -> JSONResponse:
        return problem_response(404, "Unknown policy", str(exc))

    @app.exception_handler(PolicyError)
    async def _bad_policy(_: Request, exc: PolicyError) -> JSONResponse:
        return problem_response(
            422,
            "Policy failed validation",
            "The previous policy keeps serving.",
            problems=[str(p) for p in exc.problems],
        )

    @app.exception_handler(MessageRejectedError)
    async def _rejected(_: Request, exc: MessageRejectedError) -> JSONResponse:
        return problem_response(422, "Message rejected", str(exc))

    @app.exception_handler(AuditStoreError)
    async def _store(_: Request, exc: AuditStoreError) -> JSONResponse:
        fields = {"event": "audit_store_failed", "error": type(exc.__cause__ or exc).__name__}
        log.error("audit store failed", extra={"fields": fields})
        return problem_response(
            503, "Audit store unavailable", "Retry later.", headers={"Retry-After": "1"}
        )

    @app.exception_handler(SwitchboardError)
    async def _engine_error(_: Request, exc: SwitchboardError) -> JSONResponse:
        # Any other engine error that reaches a route (a template that fails to render for one
        # message, say): a problem+json 500 naming the error class, never the input text.
        fields = {"event": "error", "error": type(exc).__name__}
        log.error("request failed", extra={"fields": fields})
        return problem_response(
            500, "Decision failed", f"{type(exc).__name__}; see the service log and runbook."
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, str(exc.detail), headers=headers)
