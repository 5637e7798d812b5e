"""Logging in and out in a real browser, the home page per role, and the offline /docs page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from service.access.principal import Role
from tests.browser.conftest import LOOPBACK, PageAs, Workbench, new_context


def test_login_page_is_accessible(
    workbench: Workbench, browser: Any, shot: Callable[[Any, str], Any], axe: Callable[[Any], None]
) -> None:
    refused: list[str] = []
    context = new_context(browser, workbench.url, refused)
    page = context.new_page()
    page.goto("/")  # anonymous: sent to the login page, and back after it
    assert page.url.endswith("/login?next=/")
    page.get_by_label("API key").fill("sbk_not_a_key")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").is_visible()
    axe(page)
    shot(page, "login")
    context.close()
    assert refused == []


def test_each_role_sees_its_home(
    page_as: PageAs, shot: Callable[[Any, str], Any], axe: Callable[[Any], None]
) -> None:
    page = page_as(Role.REVIEWER)
    nav = page.get_by_role("navigation", name="Workbench")
    assert nav.get_by_role("link", name="Review queues").is_visible()
    axe(page)
    shot(page, "home-reviewer")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")


def test_docs_fetch_nothing_from_another_host(
    page_as: PageAs, shot: Callable[[Any, str], Any]
) -> None:
    page = page_as(Role.CLIENT)
    hosts: list[str] = []
    page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or ""))
    page.goto("/docs")
    page.get_by_text("Contact-center triage decisions").wait_for()
    assert hosts
    assert set(hosts) <= LOOPBACK, hosts
    shot(page, "api-docs")
