"""Refuses a decision the service would refuse anyway, before it costs anything.

When the model guard is full and every loaded policy says ``overload: reject`` with the same
answer, ``POST /classify`` would end in that 429/503 whatever the body says. This pure-ASGI
middleware gives that answer before FastAPI parses and validates the body, so a refusal costs
the HTTP parse only and a 10x spike cannot starve the requests that were admitted. In every
other case (capacity left, a policy that degrades, policies that disagree) it steps aside and
the route decides as usual.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from service.middleware import send_problem

CLASSIFY_PATH = "/classify"
OVER_CAPACITY = ("Over capacity", "Retry later.")
"""Title and detail of every overload refusal, early here or late in the route."""


class OverloadShedding:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == CLASSIFY_PATH
            and await _shed(scope, receive, send)
        ):
            return
        await self.app(scope, receive, send)


async def _shed(scope: Scope, receive: Receive, send: Send) -> bool:
    state: Any = getattr(scope["app"].state, "switchboard", None)
    if state is None or state.guard.has_capacity():
        return False
    engines = state.holder.active
    answer = engines.shared_rejection if engines is not None else None
    if answer is None:
        return False
    status, retry_after = answer
    # Drain the body (already buffered for a normal request) so the connection stays usable.
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        more = message.get("more_body", False)
    state.metrics.shed.labels("rejected").inc()
    await send_problem(send, status, *OVER_CAPACITY, [(b"retry-after", str(retry_after).encode())])
    return True
