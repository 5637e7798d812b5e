"""The workbench: server-rendered pages for reviewers, compliance and operations staff.

Each page module has its own ``router`` (listed in ``ROUTERS``) and its templates in
``templates/<name>.html`` extending ``base.html``. ``install`` adds the routers to the app, out
of the OpenAPI schema (pages are not the API), mounts ``static/`` at ``/static`` and serves
``/docs`` from the vendored Swagger UI, so no page fetches anything from another host.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from service.workbench import (
    docs,
    explorer,
    home,
    live,
    login,
    playground,
    policies,
    queues,
    shadow,
)
from service.workbench.render import STATIC, PageTemplates

ROUTERS: tuple[APIRouter, ...] = (
    login.router,
    home.router,
    docs.router,
    queues.router,
    policies.router,
    playground.router,
    live.router,
    shadow.router,
    explorer.router,
)

__all__ = ["ROUTERS", "install"]


def install(app: FastAPI) -> None:
    """Pages, their templates and static files on ``app`` (called by ``create_app``)."""
    app.state.workbench_templates = PageTemplates()
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
