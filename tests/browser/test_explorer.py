"""The auditor's journey in a real browser: filter recorded decisions, export them as CSV,
open one; a bad filter explained on the page. Screenshots and an axe-core check on each page."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from service.access.principal import Role
from tests.browser.conftest import PageAs, Workbench

MESSAGES = (
    "I fainted after taking the new tablets this morning",
    "Please cancel my order 4411, it has not shipped",
    "My father was hospitalised after the second dose",
    "What are your opening hours on Saturday?",
)
Shot = Callable[[Any, str], Path]


def _decide(workbench: Workbench) -> list[dict[str, Any]]:
    client = workbench.auth(Role.CLIENT)
    with workbench.api() as api:
        out = []
        for message in MESSAGES:
            r = api.post("/classify", json={"message": message}, headers=client)
            assert r.status_code == 200, r.text
            out.append(r.json())
    return out


def test_an_auditor_filters_and_exports(
    workbench: Workbench, page_as: PageAs, shot: Shot, axe: Callable[[Any], None]
) -> None:
    started = datetime.now(timezone.utc).replace(microsecond=0)
    decided = _decide(workbench)
    safety = [d["decision_id"] for d in reversed(decided) if d["category"] == "safety_compliance"]
    assert len(safety) >= 2  # the fainting and the hospitalisation: rules route them to safety

    page = page_as(Role.AUDITOR)
    page.get_by_role("navigation", name="Workbench").get_by_role(
        "link", name="Decision explorer"
    ).click()
    page.wait_for_url("**/explorer")
    page.get_by_role("heading", name="Decision explorer").wait_for()
    axe(page)
    shot(page, "explorer")

    page.get_by_label("From (UTC)").fill(started.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_label("Category").select_option("safety_compliance")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/explorer?*category=safety_compliance*")
    table = page.get_by_role("table")
    links = table.get_by_role("link")
    shown = [link.get_attribute("href").rsplit("/", 1)[-1] for link in links.all()]
    assert shown == safety
    assert page.get_by_text(f"{len(safety)} decisions match").is_visible()
    axe(page)
    shot(page, "explorer-filtered")

    with page.expect_download() as downloading:
        page.get_by_role("link", name="Export these as CSV").click()
    download = downloading.value
    assert download.suggested_filename.startswith("decisions-acme-")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [row["decision_id"] for row in rows] == safety
    assert {row["category"] for row in rows} == {"safety_compliance"}
    assert all(row["created_at"] >= started.isoformat() for row in rows)
    assert {row["review_state"] for row in rows} == {"pending"}

    links.first.click()
    page.get_by_role("heading", name="How it was decided").wait_for()
    assert page.get_by_text(MESSAGES[2]).is_visible()  # the newest safety decision
    assert page.get_by_role("heading", name="Model probabilities").is_visible()
    axe(page)
    shot(page, "explorer-decision")


def test_a_bad_filter_is_explained_on_the_page(
    page_as: PageAs, shot: Shot, axe: Callable[[Any], None]
) -> None:
    page = page_as(Role.AUDITOR)
    page.goto("/explorer?since=yesterday&category=safety_compliance")
    alert = page.get_by_role("alert")
    assert "From (you gave “yesterday”) is not a date and time" in alert.inner_text()
    assert page.get_by_label("Category").input_value() == "safety_compliance"  # kept
    alert.get_by_role("link").first.click()  # the problem's link moves focus to its field
    assert page.evaluate("document.activeElement.id") == "f-since"
    axe(page)
    shot(page, "explorer-error")
