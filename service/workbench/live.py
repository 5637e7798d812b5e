"""The live numbers page, for a reviewer team lead: what is arriving, what is waiting, how the
model is doing. Refreshes itself (htmx) every 15 s; Grafana remains the operators' tool.

The numbers are the tenant's own (``live_numbers``): its decisions per category and degraded
share over the last hour or day, the backlog of the queues the caller works, and this replica's
model latency and health.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from service.access.control import Caller
from service.access.principal import Permission
from service.state import app_state
from service.workbench.access import page_caller
from service.workbench.live_numbers import WINDOWS, gather
from service.workbench.render import render

router = APIRouter()
Lead = Annotated[Caller, page_caller(Permission.LIST_REVIEWS)]
Window = Annotated[str, Query(pattern="^(" + "|".join(WINDOWS) + ")$")]


@router.get("/live")
async def page(request: Request, caller: Lead, window: Window = "1h") -> HTMLResponse:
    numbers = await gather(app_state(request), caller, window, datetime.now(timezone.utc))
    return render(request, caller, "live.html", live=numbers, windows=list(WINDOWS))


@router.get("/live/numbers")
async def numbers(request: Request, caller: Lead, window: Window = "1h") -> HTMLResponse:
    """The numbers alone, for the page's refresh."""
    numbers = await gather(app_state(request), caller, window, datetime.now(timezone.utc))
    return render(request, caller, "live_numbers.html", live=numbers)
