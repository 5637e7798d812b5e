"""The page crawl, with authentication on: every workbench page, found from ``ROUTERS``.

Each role logs in with its own API key (tenant acme; tenant globex has data too) and follows
every same-site link from ``/`` and from every page route's own URL, so a new page is crawled
without anyone adding it here: a route with a path parameter is reached through its links or
through a sample value below. The crawl fails on any server error, on a page that names another
host, on a page route no role reached, and on a page showing another tenant's decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from service.access.principal import Role
from service.workbench import ROUTERS
from tests.service.access.conftest import World
from tests.service.workbench.test_offline import links, outside_references

MAX_FETCHES = 400  # per role: a bound, far above what the two-tenant world has
# A path parameter's sample for each page route that has one (a new parameter name fails the
# coverage test below until it is given one here, unless links already reach the page).
SAMPLES: dict[str, Callable[[World], str]] = {
    "decision_id": lambda world: world.pending["acme"],
}
HTML = {"accept": "text/html"}


def page_routes() -> list[APIRoute]:
    """Every GET page the workbench serves, from its routers."""
    return [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or set())
    ]


def seeds(world: World) -> list[str]:
    out = ["/"]
    for route in page_routes():
        names = re.findall(r"{(\w+)(?::[^}]*)?}", route.path)
        if all(name in SAMPLES for name in names):
            out.append(
                re.sub(r"{(\w+)(?::[^}]*)?}", lambda m: SAMPLES[m.group(1)](world), route.path)
            )
    return out


def _login(client: httpx.Client, key: str) -> None:
    client.cookies.clear()
    client.get("/login")
    r = client.post(
        "/login",
        data={"csrf": client.cookies["sb_csrf"], "key": key, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def crawl(
    world: World, client: httpx.Client, *, anonymous: bool = False
) -> tuple[dict[str, int], list[str]]:
    """Status of every URL reached, and the problems seen on the way (without a session, a
    page other than the login and the API reference is a problem too)."""
    fetched: dict[str, int] = {}
    problems: list[str] = []
    todo = list(reversed(seeds(world)))
    while todo and len(fetched) < MAX_FETCHES:
        path = todo.pop()
        if path in fetched or path.startswith("/static/"):
            continue
        r = client.get(path, headers=HTML, follow_redirects=True)
        fetched[path] = r.status_code
        if r.status_code >= 500:
            problems.append(f"{path}: HTTP {r.status_code}")
        if anonymous and r.url.path not in {"/login", "/docs"}:
            problems.append(f"{path}: shown without a session ({r.url.path})")
        if "html" in r.headers.get("content-type", ""):
            problems.extend(f"{path}: names {u}" for u in outside_references(r.text, world.url))
            foreign = {world.decisions["globex"], world.pending["globex"]}
            problems.extend(f"{path}: shows globex's {i}" for i in foreign if i in r.text)
            todo.extend(u for u in links(r.text, world.url + path) if u not in fetched)
    assert todo == [] or len(fetched) == MAX_FETCHES
    return fetched, problems


@pytest.fixture(scope="module")
def crawled(world: World) -> dict[str, dict[str, int]]:
    """Each role's crawl (and an anonymous one), run once for the tests below."""
    out: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    with httpx.Client(base_url=world.url, timeout=60) as client:
        fetched, seen = crawl(world, client, anonymous=True)  # every page sends to /login
        out["anonymous"], problems = fetched, seen
        for role in Role:
            _login(client, world.keys[("acme", role)])
            fetched, seen = crawl(world, client)
            out[role.value] = fetched
            problems.extend(f"{role.value} {p}" for p in seen)
    assert problems == []
    return out


def test_no_page_fails_or_names_another_host(crawled: dict[str, dict[str, int]]) -> None:
    for who, fetched in crawled.items():
        assert all(status < 500 for status in fetched.values()), (who, fetched)


def test_every_page_route_is_reached(crawled: dict[str, dict[str, int]]) -> None:
    reached = {urlsplit(u).path for fetched in crawled.values() for u in fetched}
    missing = [
        route.path
        for route in page_routes()
        if not any(route.path_regex.match(path) for path in reached)
    ]
    assert missing == [], (
        "no crawl reached these pages: link them from a page, or give their path "
        "parameters a sample in SAMPLES"
    )


def test_each_role_reaches_what_its_menu_offers(crawled: dict[str, dict[str, int]]) -> None:
    """An auditor gets past the explorer into a decision and its export; a reviewer into a
    decision of their queue; an admin (who sees no records) is refused, not failed."""
    auditor = crawled["auditor"]
    assert any(u.startswith("/explorer/decisions/") and s == 200 for u, s in auditor.items())
    assert any(u.startswith("/explorer/export.csv") and s == 200 for u, s in auditor.items())
    assert crawled["reviewer"].get("/explorer") == 200
    assert crawled["admin"].get("/explorer") == 403
    assert all(s in {200} for u, s in crawled["anonymous"].items() if u == "/login")
