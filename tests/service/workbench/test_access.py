"""Workbench access: every page declares who may open it; sessions, dev login and CSRF."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.access.guard import all_routes
from service.app import create_app
from service.settings import Settings
from service.workbench.access import csrf_check
from tests.service.access.conftest import World
from tests.service.conftest import Served

# Pages anyone may open: logging in and out, and the API reference.
PUBLIC_PAGES = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/docs")}
HTML = {"accept": "text/html"}


def page_routes(app: FastAPI) -> list[Any]:
    return [r for r in all_routes(app) if r.endpoint.__module__.startswith("service.workbench.")]


def page_permission(route: Any) -> Any:
    pending = list(route.dependant.dependencies)
    while pending:
        dep = pending.pop()
        found = getattr(dep.call, "page_permission", None)
        if found is not None:
            return found
        pending.extend(dep.dependencies)
    return None


def test_every_page_declares_who_may_open_it() -> None:
    routes = page_routes(create_app(Settings()))
    assert routes
    undeclared = [
        (method, r.path)
        for r in routes
        for method in r.methods
        if page_permission(r) is None and (method, r.path) not in PUBLIC_PAGES
    ]
    assert undeclared == []


def _calls(route: Any) -> set[Any]:
    found, pending = set(), list(route.dependant.dependencies)
    while pending:
        dep = pending.pop()
        found.add(dep.call)
        pending.extend(dep.dependencies)
    return found


def test_every_post_form_checks_the_csrf_token() -> None:
    posts = [r for r in page_routes(create_app(Settings())) if "POST" in r.methods]
    assert posts
    unchecked = [r.path for r in posts if csrf_check not in _calls(r)]
    assert unchecked == [], "add dependencies=[Depends(csrf_check)] to these routes"


def test_pages_are_not_in_the_api_schema() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert "/login" not in paths
    assert "/" not in paths


def _login(client: httpx.Client, **form: str) -> httpx.Response:
    client.get("/login")
    return client.post(
        "/login", data={"csrf": client.cookies["sb_csrf"], **form}, follow_redirects=False
    )


def test_anonymous_browser_is_sent_to_login_and_back(served: Served) -> None:
    r = served.client.get("/", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/"
    r = _login(served.client, role="reviewer", next="/")
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "dev-reviewer" in served.client.get("/").text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(served: Served, target: str) -> None:
    r = _login(served.client, role="auditor", next=target)
    assert r.headers["location"] == "/"


def test_a_form_without_the_browser_token_is_refused(served: Served) -> None:
    served.client.get("/login")
    r = served.client.post("/login", data={"csrf": "forged", "role": "reviewer"}, headers=HTML)
    assert r.status_code == 403
    assert "Reload the page" in r.text
    assert "sb_session" not in served.client.cookies


def test_logout_needs_the_token_and_ends_the_session(served: Served) -> None:
    _login(served.client, role="reviewer")
    r = served.client.post("/logout", data={"csrf": "forged"}, headers=HTML)
    assert r.status_code == 403
    r = served.client.post(
        "/logout", data={"csrf": served.client.cookies["sb_csrf"]}, follow_redirects=False
    )
    assert r.status_code == 303
    assert served.client.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_with_auth_on_the_key_is_checked_like_an_api_call(world: World) -> None:
    from service.access.principal import Role

    with httpx.Client(base_url=world.url, timeout=30) as browser:
        r = _login(browser, key="sbk_00000000deadbeef_" + "x" * 43)
        assert r.status_code == 401
        assert "unknown, revoked or mistyped" in r.text
        r = _login(browser, key=world.keys[("acme", Role.AUDITOR)], next="/")
        assert r.status_code == 303
        home = browser.get("/")
        assert "acme-auditor" in home.text
        assert "tenant <strong>acme</strong>" in home.text
        # A development cookie is worthless once authentication is on.
        browser.cookies.set("sb_session", "dev:admin")
        assert browser.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_a_revoked_key_ends_its_browser_session(world: World) -> None:
    from service.access.principal import Role

    key, info = world.store.create("acme", Role.REVIEWER, name="leaver")
    with httpx.Client(base_url=world.url, timeout=30) as browser:
        _login(browser, key=key)
        assert browser.get("/").status_code == 200
        world.store.revoke(info.key_id)
        r = browser.get("/", headers=HTML, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")
