"""The authorization matrix, generated from the app's route table.

Every API route x every role x {own tenant, other tenant, no credential, bad credential} gets the
status the issue's role table implies. That table is written out below (``ALLOWED``), apart from
the grant table in ``service/access/principal.py``, so widening a grant fails here too. A route
that declares no permission fails, and so does a route the table does not list: a new route
cannot ship unguarded or unreviewed.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi import FastAPI

from service.access.guard import api_routes, declared_permission
from service.access.principal import Permission, Role
from service.app import create_app
from service.settings import Settings
from tests.service.access.conftest import World

ROUTES = sorted(api_routes(create_app(Settings())), key=lambda r: (r.path, sorted(r.methods)))
CASES = ("own", "other", "none", "bad")
BAD_KEY = "sbk_00000000deadbeef_" + "x" * 43
# Who may call what (issue 12), written out by hand: route -> the roles allowed, or "public".
ALLOWED: dict[tuple[str, str], set[Role] | str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/metrics"): "public",
    ("POST", "/classify"): {Role.CLIENT},
    ("GET", "/decisions/{decision_id}"): {Role.CLIENT, Role.REVIEWER, Role.AUDITOR},
    ("GET", "/decisions"): {Role.CLIENT, Role.REVIEWER, Role.AUDITOR},  # issue 14: search
    ("GET", "/decisions.csv"): {Role.AUDITOR},
    ("GET", "/reviews"): {Role.REVIEWER, Role.AUDITOR},
    ("POST", "/reviews/{decision_id}"): {Role.REVIEWER},
    ("POST", "/reviews/{decision_id}/claim"): {Role.REVIEWER},  # issue 14: claims
    ("DELETE", "/reviews/{decision_id}/claim"): {Role.REVIEWER},
    ("GET", "/reviews/export"): {Role.AUDITOR},
    ("GET", "/admin/policies"): {Role.ADMIN},
    ("POST", "/admin/reload"): {Role.ADMIN},
    ("POST", "/admin/rollback"): {Role.ADMIN},
    ("GET", "/admin/outbox"): {Role.ADMIN},  # issue 13: hand-off delivery operations
    ("POST", "/admin/outbox/replay"): {Role.ADMIN},
    ("POST", "/admin/shadow"): {Role.ADMIN},  # issue 14: shadow runs
    ("GET", "/admin/shadow"): {Role.ADMIN},
    ("DELETE", "/admin/shadow"): {Role.ADMIN},
    ("POST", "/admin/shadow/promote"): {Role.ADMIN},
    ("GET", "/shadow/report"): {Role.CLIENT, Role.REVIEWER, Role.AUDITOR},
}
SUCCESS = {
    ("POST", "/reviews/{decision_id}"): {201},
    ("DELETE", "/reviews/{decision_id}/claim"): {204},
    ("POST", "/admin/rollback"): {200, 409},  # 409 when the other cell already rolled back
    # Whether a shadow runs depends on which cells ran before: started, stopped or never.
    ("POST", "/admin/shadow"): {201, 409},
    ("GET", "/admin/shadow"): {200, 404},
    ("DELETE", "/admin/shadow"): {200, 409},
    ("POST", "/admin/shadow/promote"): {200, 409},
    ("GET", "/shadow/report"): {200, 404},
}


def _cells() -> list[Any]:
    out = []
    for route in ROUTES:
        (method,) = route.methods
        for role in Role:
            for case in CASES:
                out.append(
                    pytest.param(route, role, case, id=f"{method} {route.path}-{role.value}-{case}")
                )
    return out


def undeclared(app: FastAPI) -> list[str]:
    return [r.path for r in api_routes(app) if declared_permission(r) is None]


def _request(world: World, route: Any, case: str) -> tuple[str, str, dict[str, Any]]:
    """Method, path and JSON body addressing the acme caller's own data, or globex's."""
    (method,) = route.methods
    target = "globex" if case == "other" else "acme"
    path = route.path.replace("{decision_id}", world.decisions[target])
    body: dict[str, Any] | None = None
    if route.path == "/classify":
        body = {"message": "where is my order?"}
        if case == "other":
            body["policy"] = "globex-center"  # only globex may use it
    elif route.path == "/reviews/{decision_id}":
        body = {"category": "service_action", "note": "matrix"}
    elif route.path == "/admin/outbox/replay":
        body = {"outbox_ids": []}
    elif (method, route.path) == ("POST", "/admin/shadow"):
        body = {"directory": str(world.settings.policies)}
    return method, path, {"json": body} if body is not None else {}


def _headers(world: World, role: Role, case: str) -> dict[str, str]:
    if case == "none":
        return {}
    if case == "bad":
        return {"Authorization": f"Bearer {BAD_KEY}"}
    return world.auth("acme", role)


def expected(route: Any, role: Role, case: str) -> set[int]:
    (method,) = route.methods
    allowed = ALLOWED[(method, route.path)]
    if allowed == "public":
        return {200}
    if case in ("none", "bad"):
        return {401}
    if role not in allowed:
        return {403}
    addressed = "{decision_id}" in route.path or route.path == "/classify"
    if case == "other" and addressed and role is not Role.ADMIN:
        return {404}  # exactly like a missing one
    return SUCCESS.get((method, route.path), {200})


def test_every_route_declares_a_permission() -> None:
    assert undeclared(create_app(Settings())) == []
    app = create_app(Settings())

    @app.get("/forgotten")
    async def forgotten() -> None: ...

    assert undeclared(app) == ["/forgotten"]


def test_the_matrix_covers_every_route() -> None:
    listed = {(method, r.path) for r in ROUTES for method in r.methods}
    assert listed == set(ALLOWED), "add the new route to ALLOWED with the roles that may call it"
    public = {key for key, roles in ALLOWED.items() if roles == "public"}
    declared_public = {
        (method, r.path)
        for r in ROUTES
        for method in r.methods
        if declared_permission(r) is Permission.PUBLIC
    }
    assert declared_public == public
    assert len(_cells()) == len(ROUTES) * len(Role) * len(CASES) == 22 * 5 * 4


@pytest.mark.parametrize(("route", "role", "case"), _cells())
def test_matrix(world: World, route: Any, role: Role, case: str) -> None:
    permission = declared_permission(route)
    assert permission is not None, f"{route.path} declares no permission"
    method, path, kwargs = _request(world, route, case)
    r = world.client.request(method, path, headers=_headers(world, role, case), **kwargs)
    assert r.status_code in expected(route, role, case), (r.status_code, r.text)
    if r.status_code == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    if r.status_code == 404 and "{decision_id}" in route.path:
        missing = world.client.request(
            method,
            route.path.replace("{decision_id}", "no-such-decision"),
            headers=_headers(world, role, case),
            **kwargs,
        )
        assert missing.status_code == 404
        assert missing.json()["title"] == r.json()["title"]
    if r.status_code == 200 and case == "other":
        foreign = {world.decisions["globex"], world.pending["globex"]}
        assert not any(i in r.text for i in foreign), "another tenant's id leaked"


def test_lists_hold_only_the_callers_tenant(world: World) -> None:
    pending = world.client.get("/reviews", headers=world.auth("acme", Role.REVIEWER)).json()
    assert [p["decision_id"] for p in pending["pending"]] == [world.pending["acme"]]
    export = world.client.get("/reviews/export", headers=world.auth("acme", Role.AUDITOR)).text
    ids = {row["id"] for row in csv.DictReader(io.StringIO(export))}
    assert world.decisions["acme"] in ids
    assert world.decisions["globex"] not in ids


def test_the_reviewer_is_the_credential_never_the_body(world: World) -> None:
    target = world.pending["acme"]
    forged = world.client.post(
        f"/reviews/{target}",
        json={"category": "informational", "reviewer": "someone-else"},
        headers=world.auth("acme", Role.REVIEWER),
    )
    assert forged.status_code == 422  # the body has no reviewer field
    r = world.client.get(
        f"/decisions/{world.decisions['acme']}", headers=world.auth("acme", Role.AUDITOR)
    )
    assert {rv["reviewer"] for rv in r.json()["reviews"]} <= {"acme-reviewer"}
    assert r.json()["tenant"] == "acme"
