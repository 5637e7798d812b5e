"""The decision explorer's pages over HTTP (a development login per role; the browser journey
is tests/browser/test_explorer.py): filters, errors on the page, paging, export, a decision."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from html import unescape
from typing import Any

import httpx
import pytest

from engine.backends.fake import Scripted
from engine.categories import Category
from service.access.principal import Role
from service.workbench.explorer import workflow_in_words
from tests.service.access.conftest import World
from tests.service.conftest import Served

HTML = {"accept": "text/html"}
UNSURE = {
    Category.INFORMATIONAL: 0.35,
    Category.SERVICE_ACTION: 0.5,
    Category.SAFETY_COMPLIANCE: 0.15,
}


def _login(client: httpx.Client, role: str) -> None:
    client.cookies.clear()
    client.get("/login")
    r = client.post(
        "/login", data={"csrf": client.cookies["sb_csrf"], "role": role}, follow_redirects=False
    )
    assert r.status_code == 303, r.text


def _decide(served: Served) -> list[dict[str, Any]]:
    script = [
        ("where is my order 17?", Scripted.label(Category.SERVICE_ACTION, 0.95)),
        ("I fainted after the second pill", Scripted.label(Category.INFORMATIONAL, 0.9)),
        ("my thing is odd", Scripted(UNSURE)),
        ("opening hours?", Scripted.label(Category.INFORMATIONAL, 0.95)),
    ]
    out = []
    for message, verdict in script:
        served.backend.enqueue(verdict)
        r = served.client.post("/classify", json={"message": message})
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def _rows(html: str) -> list[str]:
    """The decision ids the result table links to, in order."""
    return re.findall(r'href="/explorer/decisions/([^"]+)"', html)


@pytest.fixture
def auditor(served: Served) -> httpx.Client:
    _login(served.client, "auditor")
    return served.client


def test_the_explorer_lists_and_filters(served: Served, auditor: httpx.Client) -> None:
    decided = _decide(served)
    r = auditor.get("/explorer", headers=HTML)
    assert r.status_code == 200
    assert _rows(r.text) == [d["decision_id"] for d in reversed(decided)]
    assert "<strong>4</strong> decisions match" in r.text
    safety = [d["decision_id"] for d in decided if d["category"] == "safety_compliance"]
    r = auditor.get("/explorer", params={"category": "safety_compliance", "since": ""})
    assert _rows(r.text) == safety
    assert '<option value="safety_compliance" selected>' in r.text  # the form keeps the filter
    r = auditor.get("/explorer", params={"rule": "safety-severe-event", "review": "pending"})
    assert _rows(r.text) == safety
    r = auditor.get("/explorer", params={"review": "not_needed"})
    assert _rows(r.text) == [decided[3]["decision_id"], decided[0]["decision_id"]]


def test_a_time_with_an_offset_is_shown_in_utc(auditor: httpx.Client) -> None:
    r = auditor.get("/explorer", params={"since": "2026-11-23T10:00:00+02:00"})
    assert r.status_code == 200
    assert 'name="since" step="1" value="2026-11-23T08:00:00"' in r.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "From (you gave “yesterday”) is not a date and time"),
        ({"category": "spam"}, "Category (you gave “spam”) must be one of: informational, service"),
        ({"review": "done"}, "Review (you gave “done”) must be pending, reviewed or not needed"),
        ({"degraded": "maybe"}, "Degraded (you gave “maybe”) must be yes or no"),
        (
            {"since": "2026-11-24T00:00", "until": "2026-11-23T00:00"},
            "Time range: Until must be later than From",
        ),
        ({"cursor": "forged"}, "Page: the page cursor is not one this service wrote"),
    ],
)
def test_a_bad_filter_is_explained_on_the_page(
    auditor: httpx.Client, params: dict[str, str], message: str
) -> None:
    r = auditor.get("/explorer", params=params, headers=HTML)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    text = unescape(r.text)
    assert "Check the filters" in text
    assert message in text, text
    if "cursor" not in params:
        field = next(iter(params)) if "until" not in params else "until"
        assert re.search(rf'id="f-{field}"[^>]*aria-invalid="true"', r.text)


def test_pages_follow_the_next_link(
    served: Served, auditor: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.workbench.explorer.PAGE_SIZE", 3)
    decided = _decide(served)
    first = auditor.get("/explorer", params={"degraded": "false"})
    [next_link] = re.findall(r'href="(/explorer\?[^"]*cursor=[^"]*)" rel="next"', first.text)
    assert "degraded=false" in unescape(next_link)  # the filter travels with the page
    second = auditor.get(unescape(next_link))
    assert _rows(first.text) + _rows(second.text) == [d["decision_id"] for d in reversed(decided)]
    assert 'rel="next"' not in second.text
    assert ">First page</a>" in second.text


def test_the_export_link_carries_the_filters(served: Served, auditor: httpx.Client) -> None:
    decided = _decide(served)
    page = auditor.get("/explorer", params={"category": "informational", "rule": ""})
    [link] = re.findall(r'id="export" href="([^"]+)"', page.text)
    assert unescape(link) == "/explorer/export.csv?category=informational"
    r = auditor.get(unescape(link))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    expected = [d for d in reversed(decided) if d["category"] == "informational"]
    assert [row["decision_id"] for row in rows] == [d["decision_id"] for d in expected]
    assert {row["category"] for row in rows} == {"informational"}


def test_a_bad_export_filter_is_a_page_too(auditor: httpx.Client) -> None:
    r = auditor.get("/explorer/export.csv", params={"category": "spam"}, headers=HTML)
    assert r.status_code == 422
    assert "Check the filters" in r.text


def test_only_exporters_get_the_export(served: Served) -> None:
    _decide(served)
    _login(served.client, "reviewer")
    page = served.client.get("/explorer")
    assert page.status_code == 200
    assert 'id="export"' not in page.text
    refused = served.client.get("/explorer/export.csv", headers=HTML)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    _login(served.client, "admin")
    assert served.client.get("/explorer", headers=HTML).status_code == 403


def test_a_decision_reads_as_words(served: Served, auditor: httpx.Client) -> None:
    decided = _decide(served)
    fainted = decided[1]["decision_id"]
    served.client.post(f"/reviews/{fainted}", json={"category": "safety_compliance", "note": "AE"})
    r = auditor.get(f"/explorer/decisions/{fainted}")
    assert r.status_code == 200
    text = unescape(re.sub(r"<[^>]+>", " ", r.text))
    text = re.sub(r"\s+", " ", text)
    for expected in (
        "I fainted after the second pill",
        "Channel chat",
        "The model read the message as informational (a question to answer), 90% likely.",
        "Rule safety-severe-event fired:",
        "A rule moved the category from informational",
        "Every safety case is reviewed by a person",
        "safety-severe-event Serious outcomes",
        "informational (model's label) 90.0%",
        "waits for a person in the pharmacovigilance queue",
        "dev-auditor",  # the header's who-am-I, not the reviewer
        "review: reviewed",
        "review.pharmacovigilance",
    ):
        assert expected in text, expected
    assert "safety & compliance AE" in text  # the review: category and note


def test_reading_a_decision_is_in_the_access_audit(served: Served, auditor: httpx.Client) -> None:
    decided = _decide(served)
    auditor.get("/explorer")
    auditor.get(f"/explorer/decisions/{decided[0]['decision_id']}")
    with sqlite3.connect(served.settings.audit_db) as db:
        rows = db.execute(
            "SELECT subject, action, decision_ids FROM accesses ORDER BY id"
        ).fetchall()
    *_, search, read = [(s, a, json.loads(ids)) for s, a, ids in rows]
    assert search == ("dev-auditor", "search_decisions", [d["decision_id"] for d in decided[::-1]])
    assert read == ("dev-auditor", "read_decision", [decided[0]["decision_id"]])


def test_a_missing_decision_is_a_404_page(auditor: httpx.Client) -> None:
    r = auditor.get("/explorer/decisions/no-such-decision", headers=HTML)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "No such decision" in r.text


def test_a_reviewer_explores_only_their_queues(world: World) -> None:
    """Authentication on: a reviewer limited to pharmacovigilance sees none of the service-desk
    decisions, in the list or by id; one limited to the service desk sees them."""
    desk_ids = {world.decisions["acme"], world.pending["acme"]}  # both routed to service_desk
    for queue, sees in (("pharmacovigilance", False), ("service_desk", True)):
        key, _ = world.store.create(
            "acme", Role.REVIEWER, name=f"explorer-{queue}", queues=frozenset({queue})
        )
        with httpx.Client(base_url=world.url, timeout=30) as client:
            client.get("/login")
            client.post("/login", data={"csrf": client.cookies["sb_csrf"], "key": key})
            page = client.get("/explorer", headers=HTML)
            assert page.status_code == 200
            assert f"in your review queues ({queue})" in page.text
            assert (set(_rows(page.text)) >= desk_ids) is sees
            assert not set(_rows(page.text)) & {world.decisions["globex"], world.pending["globex"]}
            one = client.get(f"/explorer/decisions/{world.pending['acme']}", headers=HTML)
            assert one.status_code == (200 if sees else 404)


def test_the_workflow_in_words() -> None:
    waiting = {
        "workflow": {
            "name": "safety_compliance",
            "completed": ["enrich", "create_case_record"],
            "next_step": "pv_review",
            "status": "awaiting_review",
            "queue": "pharmacovigilance",
            "sla_due_at": "2026-11-24T12:00:00+00:00",
        }
    }
    assert workflow_in_words(waiting) == (
        "The safety & compliance workflow ran enrich, create_case_record; it waits for a person "
        "in the pharmacovigilance queue at step pv_review, due 2026-11-24T12:00:00+00:00."
    )
    sent = {
        "workflow": {
            "name": "service_action",
            "completed": [],
            "next_step": "ticket",
            "status": "dispatched",
        }
    }
    assert workflow_in_words(sent) == (
        "The service action workflow ran no step yet; it handed the case on at step ticket."
    )


def test_a_decision_links_to_the_searches_it_belongs_to(
    served: Served, auditor: httpx.Client
) -> None:
    decided = _decide(served)
    fainted = decided[1]
    page = auditor.get(f"/explorer/decisions/{fainted['decision_id']}")
    by_rule = auditor.get("/explorer?rule=safety-severe-event")
    assert 'href="/explorer?rule=safety-severe-event"' in page.text
    assert _rows(by_rule.text) == [fainted["decision_id"]]
    revision = fainted["policy"]["revision"]
    assert f'href="/explorer?policy_revision={revision}"' in page.text
