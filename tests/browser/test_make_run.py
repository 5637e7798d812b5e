"""``make run`` for a newcomer: / opens the workbench, through the development login."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.browser.conftest import new_context


def test_make_run_opens_the_workbench_with_a_development_login(
    dev_workbench: str, browser: Any, shot: Callable[[Any, str], Any], axe: Callable[[Any], None]
) -> None:
    refused: list[str] = []
    context = new_context(browser, dev_workbench, refused)
    page = context.new_page()
    page.goto("/")
    page.wait_for_url("**/login?next=/")
    assert page.get_by_role("note").inner_text().startswith("Development mode")
    shot(page, "dev-login")
    axe(page)
    page.get_by_label("auditor").check()
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{dev_workbench}/")
    assert "dev-auditor" in page.locator("header").inner_text()
    page.get_by_role("link", name="Review queues").first.click()
    page.get_by_role("heading", name="Review queues").wait_for()
    context.close()
    assert refused == []
