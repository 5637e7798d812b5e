"""``POST /classify`` without FastAPI's per-request machinery, for a request FastAPI would accept.

The FastAPI route (``service.routes.classify``) stays the contract: the OpenAPI schema, and the
answer to every request this path does not take. This path (pure ASGI, the innermost middleware,
so shedding, the body guard and every outer layer still apply) takes a request whose body is
``application/json`` that ``ClassifyRequest`` accepts, and then does what the route does through
the same calls: ``AccessControl.authorize`` for the route's permission, then
``classify.decide`` (tenant, admission, decision, audit, hand-off, log, metrics). An exception
goes to the app's own exception handlers, as it would from the route. Anything else (another
content type, a body that fails validation, a test's dependency override) is replayed to FastAPI
unchanged, so its answers, errors included, are FastAPI's own.

Why: routing, dependency solving, body validation and the exception and exit-stack layers cost
a fifth of a served decision's GIL time (docs/performance.md, "The /classify fast path").
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import CLASSIFY_PATH
from service.api import ClassifyRequest
from service.routes.classify import MEDIA_TYPE, PERMISSION, decide
from service.state import AppState

_RESPONSE_HEADERS = (b"content-type", MEDIA_TYPE.encode("latin-1"))


class ClassifyFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != CLASSIFY_PATH
            or not _declares_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        app: Any = scope["app"]
        state: AppState | None = getattr(app.state, "switchboard", None)
        received: list[Message] = []
        body = await _read_body(receive, received)
        request = None
        if state is not None and body is not None and not app.dependency_overrides:
            try:
                request = ClassifyRequest.model_validate_json(body)
            except ValidationError:
                request = None
        if state is None or request is None:
            await self.app(scope, _replay(received, receive), send)
            return
        try:
            caller = await state.access.authorize(_authorization(scope), PERMISSION)
            encoded = await decide(state, request, caller)
        except Exception as exc:
            handler = _handler_for(app.exception_handlers, exc)
            if handler is None:
                raise  # as from the route: ServerErrorMiddleware answers
            response = await handler(Request(scope, _replay(received, receive)), exc)
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                # What starlette's Response(encoded, media_type=...) sends, in its order.
                "headers": [(b"content-length", str(len(encoded)).encode()), _RESPONSE_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": encoded})


def _declares_json(scope: Scope) -> bool:
    """The content type is ``application/json`` (parameters allowed): FastAPI reads it as JSON."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json"
    return False


def _authorization(scope: Scope) -> str | None:
    """The first ``Authorization`` header, as ``request.headers.get`` gives it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive, received: list[Message]) -> bytes | None:
    """The whole body (None when the client left first); every message is kept in ``received``."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back what was already read."""
    pending = list(received)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The app's handler for ``exc`` by its class hierarchy, as starlette's ExceptionMiddleware
    looks it up; ``Exception`` itself is left to ServerErrorMiddleware, as in starlette."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
