"""The workbench's home page: what the signed-in person may open, and who they are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.access.control import Caller
from service.access.principal import Principal
from service.state import app_state
from service.workbench.access import signed_in
from service.workbench.render import render

router = APIRouter()


@router.get("/")
async def home(request: Request, principal: Annotated[Principal, signed_in()]) -> HTMLResponse:
    tenant = app_state(request).access.tenants.get(principal.tenant)
    return render(request, Caller(principal, tenant), "home.html")
