"""The route dependency that declares, per route, the one permission it needs.

Every route states ``caller: Caller = requires(Permission.X)`` (or ``dependencies=[public()]``);
the authorization-matrix test reads these declarations from the app's route table, and fails for
a route that declares none.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from service.access.control import Caller
from service.access.principal import Permission
from service.state import app_state


def requires(permission: Permission) -> Any:
    async def authorized(request: Request) -> Caller:
        access = app_state(request).access
        return await access.authorize(request.headers.get("authorization"), permission)

    authorized.permission = permission  # type: ignore[attr-defined]
    authorized.__name__ = f"requires_{permission.name.lower()}"
    return Depends(authorized)


def public() -> Any:
    return requires(Permission.PUBLIC)


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route (those in the OpenAPI schema): see ``all_routes``."""
    # The workbench's pages and /docs are not the API (kept out of the schema): their own
    # access test is tests/service/workbench/test_access.py.
    return [r for r in all_routes(app) if getattr(r, "include_in_schema", True)]


def all_routes(app: FastAPI) -> list[Any]:
    """Every route with its effective path, methods and dependencies (router prefixes and
    router-level dependencies applied), whether FastAPI flattened included routers or not."""
    out: list[Any] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "effective_route_contexts"):  # FastAPI's lazily included routers
            out.extend(c for c in route.effective_route_contexts() if getattr(c, "dependant", None))
    return out


def declared_permission(route: Any) -> Permission | None:
    """The permission a FastAPI route declares through ``requires``, or None."""
    pending = list(route.dependant.dependencies)
    while pending:
        dep = pending.pop()
        found = getattr(dep.call, "permission", None)
        if isinstance(found, Permission):
            return found
        pending.extend(dep.dependencies)
    return None
