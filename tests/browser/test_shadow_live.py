"""The shadow page and the live numbers page in a real browser, with the real model.

An admin starts a shadow run of a candidate that removes two safety keywords (after the
confirmation step); live messages arrive; the admin sees the counts, an auditor of the tenant the
messages that would leave safety. A reviewer opens the live page and sees it refresh itself."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.access.principal import Role
from tests.browser.conftest import PageAs, Workbench
from tests.conftest import REPO

# With the keyword gone, the model alone decides these; it reads them as service requests.
LEAVING = [
    "Your driver parked in the ambulance bay at the clinic and I got a fine. Refund it please.",
    "I almost fainted at the checkout total. Please cancel order 5521 and refund my card.",
]
STAYING = "My mother fainted after her second dose, what should we do?"


def _classify(workbench: Workbench, message: str) -> dict[str, Any]:
    with workbench.api() as api:
        r = api.post("/classify", json={"message": message}, headers=workbench.auth(Role.CLIENT))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _settled(workbench: Workbench) -> dict[str, Any]:
    """The admin report once the shadow worker has decided everything offered to it."""
    deadline = time.monotonic() + 120
    with workbench.api() as api:
        while True:
            report: dict[str, Any] = api.get(
                "/admin/shadow", headers=workbench.auth(Role.ADMIN)
            ).json()
            run = report["run"]
            done = sum(run["decided"].values()) + sum(run["skipped"].values())
            if done == run["offered"] or time.monotonic() > deadline:
                return report
            time.sleep(0.2)


@pytest.fixture
def candidate(tmp_path: Path, workbench: Workbench) -> Iterator[Path]:
    """The served policy without ``ambulance`` and ``fainted`` in ``severe_event``; any shadow
    still running afterwards is stopped (the workbench is shared by the session's tests)."""
    target = tmp_path / "candidate" / "contact-center"
    shutil.copytree(REPO / "policies" / "contact-center", target)
    rules = target / "rules.yaml"
    data = yaml.safe_load(rules.read_text(encoding="utf-8"))
    keywords = data["keyword_groups"]["severe_event"]["keywords"]
    for word in ("ambulance", "fainted"):
        keywords.remove(word)
    rules.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    yield target
    with workbench.api() as api:
        api.delete("/admin/shadow", headers=workbench.auth(Role.ADMIN))


def test_a_shadow_run_of_a_candidate_that_removes_safety_keywords(
    workbench: Workbench,
    candidate: Path,
    page_as: PageAs,
    shot: Callable[[Any, str], Any],
    axe: Callable[[Any], None],
) -> None:
    admin = page_as(Role.ADMIN)
    admin.get_by_role("link", name="Shadow runs").first.click()
    admin.get_by_role("heading", name="Start a shadow run").wait_for()
    admin.get_by_label("Candidate policy directory on the server").fill(str(candidate))
    admin.get_by_label("Sample rate when the prompt differs").fill("0")
    shot(admin, "shadow-start")
    axe(admin)
    admin.get_by_role("button", name="Start shadow…").click()
    admin.get_by_role("heading", name="Please confirm").wait_for()
    shot(admin, "shadow-confirm")
    axe(admin)
    admin.get_by_role("button", name="Yes, start the shadow run").click()
    admin.get_by_role("status").filter(has_text="runs in shadow").wait_for()

    live = [_classify(workbench, m) for m in [*LEAVING, STAYING]]
    assert [d["category"] for d in live] == ["safety_compliance"] * 3
    # Without an answer from the model (its deadline passes on a busy machine) the candidate
    # falls back like the live revision, and only the live one has the keyword: it leaves too.
    stays = live[-1]["llm"]["status"] == "ok"
    leaving = len(LEAVING) + (0 if stays else 1)
    report = _settled(workbench)
    (acme,) = [t for t in report["tenants"] if t["tenant"] == "acme"]
    assert acme["leave_safety"] == leaving
    assert acme["examples"] is None  # the admin's API report: counts, never text
    assert report["run"]["decided"].get("model", 0) == 0  # every verdict was the live one

    admin.reload()
    table = admin.get_by_role("table", name="Agreement per tenant")
    row = table.get_by_role("row").filter(has=admin.get_by_role("rowheader", name="acme"))
    assert row.get_by_role("cell").nth(2).inner_text() == str(leaving)
    assert admin.get_by_text(LEAVING[0]).count() == 0  # no message text for an admin
    shot(admin, "shadow-admin")
    axe(admin)

    auditor = page_as(Role.AUDITOR)
    auditor.get_by_role("link", name="Shadow report").first.click()
    examples = auditor.get_by_role("table", name="Would leave safety: newest examples, tenant acme")
    for message in LEAVING:
        assert examples.get_by_text(message).count() == 1
    assert examples.get_by_text(STAYING).count() == (0 if stays else 1)
    shot(auditor, "shadow-tenant")
    axe(auditor)

    admin.get_by_role("button", name="Stop shadow…").click()
    admin.get_by_role("button", name="Yes, stop it").click()
    admin.get_by_role("status").filter(has_text="stopped").wait_for()
    assert admin.get_by_role("heading", name="Start a shadow run").count() == 1


def test_the_live_page_refreshes_itself(
    workbench: Workbench,
    page_as: PageAs,
    shot: Callable[[Any, str], Any],
    axe: Callable[[Any], None],
) -> None:
    _classify(workbench, LEAVING[0])
    lead = page_as(Role.REVIEWER)
    lead.get_by_role("link", name="Live numbers").first.click()
    per_category = lead.get_by_role("table", name="Decisions per category, last hour")
    safety = per_category.get_by_role("row").filter(
        has=lead.get_by_role("rowheader", name="safety compliance")
    )
    assert int(safety.get_by_role("cell").inner_text()) >= 1
    lead.get_by_role("heading", name="Review backlog").wait_for()
    assert lead.get_by_text("Latency, median").count() == 1
    shot(lead, "live")
    axe(lead)
    # htmx asks for the numbers again on its own (every 15 s) and swaps them in.
    with lead.expect_response(lambda r: "/live/numbers" in r.url, timeout=40_000) as refreshed:
        pass
    assert refreshed.value.status == 200
    lead.get_by_role("link", name="Last 24 hours").click()
    lead.get_by_role("table", name="Decisions per category, last 24 hours").wait_for()
