"""The reviewer's journey in a real browser: open the queue, claim a safety case, confirm it
unchanged, see it leave the queue; its hand-off is committed exactly once. Timed, not asserted."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from service.access.principal import Role
from tests.browser.conftest import ARTIFACTS, PageAs, Workbench

ADVERSE = "After the second tablet I had a bad reaction, my lips swelled. Call me on 415-555-0100."
OTHERS = [
    "Can you tell me if the 20 mg tablets can be split?",
    "Please cancel my order 5531, it was sent to the wrong address.",
]


def _classify(workbench: Workbench, message: str) -> dict[str, Any]:
    with workbench.api() as api:
        r = api.post("/classify", json={"message": message}, headers=workbench.auth(Role.CLIENT))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _received_long_ago(workbench: Workbench, decision_id: str, hours: float) -> str:
    """A copy of a stored decision as if it had arrived ``hours`` ago (an overdue case), written
    into the service's SQLite store the way the service writes one (decisions are insert-only)."""
    with sqlite3.connect(workbench.audit_db, timeout=30) as db:
        db.row_factory = sqlite3.Row
        row = dict(
            db.execute("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()
        )
        record = json.loads(row["record"])
        old = datetime.fromisoformat(record["created_at"]) - timedelta(hours=hours)
        copy = uuid.uuid4().hex
        record.update(decision_id=copy, created_at=old.isoformat())
        row.update(decision_id=copy, created_at=old.isoformat(), record=json.dumps(record))
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        insert = f"INSERT INTO decisions ({columns}) VALUES ({marks})"  # noqa: S608
        db.execute(insert, tuple(row.values()))
    return copy


@pytest.fixture(scope="module")
def safety_case(workbench: Workbench) -> str:
    for message in OTHERS:
        _classify(workbench, message)
    body = _classify(workbench, ADVERSE)
    assert body["category"] == "safety_compliance"
    assert body["workflow"]["queue"] == "pharmacovigilance"
    return str(body["decision_id"])


@pytest.fixture(scope="module")
def overdue_case(workbench: Workbench, safety_case: str) -> str:
    return _received_long_ago(workbench, safety_case, hours=26)  # the safety SLA is 24 h


def test_reviewer_confirms_a_safety_case(
    workbench: Workbench,
    safety_case: str,
    overdue_case: str,
    page_as: PageAs,
    shot: Callable[[Any, str], Any],
    axe: Callable[[Any], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = safety_case
    page = page_as(Role.REVIEWER)
    started = time.perf_counter()
    page.get_by_role("link", name="Review queues").first.click()
    queue = page.get_by_role("region", name="Pharmacovigilance")
    link = queue.get_by_role("link", name=f"{case[:12]}…")
    link.wait_for()
    opened_queue = time.perf_counter()
    rows = queue.get_by_role("row")
    assert overdue_case[:12] in rows.nth(1).inner_text()  # soonest deadline first
    assert "Overdue" in rows.nth(1).inner_text()
    assert "left" in queue.get_by_role("row").filter(has_text=case[:12]).inner_text()
    shot(page, "queues")
    axe(page)
    link.click()
    page.get_by_role("heading", name="How it was decided").wait_for()
    assert "<PHONE_NUMBER>" in page.locator("pre.message").inner_text()
    shot(page, "case")
    axe(page)
    page.get_by_role("button", name="Claim this case").click()
    category = page.get_by_label("Category")
    assert category.input_value() == "safety_compliance"  # changes nothing
    shot(page, "case-claimed")
    axe(page)
    page.get_by_role("button", name="Save the review").click()
    page.wait_for_url(f"**/queues?done={case}")
    gone = page.get_by_role("region", name="Pharmacovigilance").get_by_role(
        "link", name=f"{case[:12]}…"
    )
    assert gone.count() == 0
    finished = time.perf_counter()
    page.get_by_role("status").wait_for()
    shot(page, "queues-after-review")
    axe(page)

    with workbench.api() as api:
        stored = api.get(f"/decisions/{case}", headers=workbench.auth(Role.AUDITOR)).json()
    assert [r["category"] for r in stored["reviews"]] == ["safety_compliance"]
    assert stored["reviews"][0]["reviewer"] == "acme-reviewer"
    key = f"{case}:report_to_safety_db"
    assert [h["idempotency_key"] for h in stored["handoffs"]].count(key) == 1
    with sqlite3.connect(workbench.audit_db) as db:
        [(count,)] = db.execute("SELECT COUNT(*) FROM outbox WHERE idempotency_key = ?", (key,))
    assert count == 1

    journey = (
        f"reviewer journey: queue open {opened_queue - started:.2f} s, "
        f"open -> claim -> confirm -> gone {finished - opened_queue:.2f} s, "
        f"total {finished - started:.2f} s"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "journey.txt").write_text(journey + "\n", encoding="utf-8")
    with capsys.disabled():
        print(f"\n{journey}")


def test_a_second_reviewer_sees_the_claim_and_cannot_work_the_case(
    workbench: Workbench, page_as: PageAs, shot: Callable[[Any, str], Any]
) -> None:
    case = str(_classify(workbench, ADVERSE)["decision_id"])
    ann = page_as(Role.REVIEWER)
    bob = page_as(Role.REVIEWER, key=workbench.new_key(Role.REVIEWER, "bob-reviewer"))
    ann.goto(f"/cases/{case}")
    ann.get_by_role("button", name="Claim this case").click()
    ann.get_by_label("Category").wait_for()
    bob.goto("/queues")
    row = bob.get_by_role("row").filter(has_text=case[:12])
    assert "acme-reviewer" in row.inner_text()
    bob.goto(f"/cases/{case}")
    assert bob.get_by_role("button", name="Claim this case").count() == 0
    assert "acme-reviewer is working this case" in bob.locator("main").inner_text()
    shot(bob, "case-claimed-by-another")


def _tab_to(page: Any, name: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement?.textContent?.trim() ?? ''")
        if focused == name:
            return
    raise AssertionError(f"{name!r} is not reachable with Tab")


def test_a_case_can_be_worked_with_the_keyboard_alone(
    workbench: Workbench, page_as: PageAs
) -> None:
    case = str(_classify(workbench, ADVERSE)["decision_id"])
    page = page_as(Role.REVIEWER)
    page.goto("/queues")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    _tab_to(page, f"{case[:12]}…")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/cases/{case}")
    _tab_to(page, "Claim this case")
    page.keyboard.press("Enter")
    page.get_by_label("Category").wait_for()
    _tab_to(page, "Save the review")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/queues?done={case}")
