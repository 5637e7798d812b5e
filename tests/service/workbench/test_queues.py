"""Review queues and case pages over HTTP (fake model, auth off, development logins)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx

from engine.backends.fake import Scripted
from engine.categories import Category
from service.access.principal import Role
from service.audit import Claim, PendingReview
from service.workbench.queues import queue_rows, time_left
from tests.service.access.conftest import World
from tests.service.conftest import Served

HTML = {"accept": "text/html"}
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
UNSURE = {
    Category.INFORMATIONAL: 0.35,
    Category.SERVICE_ACTION: 0.5,
    Category.SAFETY_COMPLIANCE: 0.15,
}


def _pending(i: int, category: str, hours_ago: float, queue: str) -> PendingReview:
    at = (NOW - timedelta(hours=hours_ago)).isoformat()
    return PendingReview(f"d{i}", at, category, "rev", queue)


def test_queue_is_ordered_by_sla_deadline_with_overdue_marked() -> None:
    sla = {"safety_compliance": 24.0, "service_action": 48.0, "informational": None}
    pending = [
        _pending(1, "service_action", 30, "service_desk"),  # due in 18 h
        _pending(2, "safety_compliance", 1, "pharmacovigilance"),  # due in 23 h
        _pending(3, "informational", 100, "agent_review"),  # no SLA: last
        _pending(4, "safety_compliance", 25, "pharmacovigilance"),  # overdue by 1 h
    ]
    claims = {"d2": Claim("d2", "ann", "t", "t")}
    rows = queue_rows(pending, claims, sla, NOW)
    assert [r.decision_id for r in rows] == ["d4", "d1", "d2", "d3"]
    assert rows[0].overdue
    assert rows[0].left == "overdue by 1 h 0 min"
    assert rows[1].left == "18 h 0 min left"
    assert rows[2].claim is not None
    assert rows[2].claim.holder == "ann"
    assert rows[3].left == "no SLA"
    assert time_left(NOW + timedelta(minutes=5), NOW) == ("5 min left", False)


def _login(client: httpx.Client, role: str) -> None:
    client.cookies.clear()
    client.get("/login")
    client.post("/login", data={"csrf": client.cookies["sb_csrf"], "role": role})


def _case(served: Served, message: str, verdict: Scripted) -> str:
    served.backend.enqueue(verdict)
    r = served.client.post("/classify", json={"message": message})
    assert r.status_code == 200, r.text
    return str(r.json()["decision_id"])


def test_reviewer_claims_confirms_and_the_case_leaves_the_queue(served: Served) -> None:
    safety = _case(
        served,
        "I had a bad reaction to the tablets",
        Scripted.label(Category.SAFETY_COMPLIANCE, 0.9),
    )
    desk = _case(served, "my order is odd", Scripted(UNSURE))
    client = served.client
    _login(client, "reviewer")
    page = client.get("/queues").text
    for title in ("Pharmacovigilance", "Service desk", "Agent review"):
        assert title in page
    assert safety[:12] in page
    assert desk[:12] in page
    case = client.get(f"/cases/{safety}").text
    assert "I had a bad reaction to the tablets" in case
    assert "The model read the message as safety" in case
    assert "Every safety case is reviewed by a person" in case
    assert "report to safety db" in case
    assert "Claim this case" in case
    csrf = client.cookies["sb_csrf"]
    r = client.post(f"/cases/{safety}/claim", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    case = client.get(f"/cases/{safety}").text
    assert "You hold this case" in case
    r = client.post(
        f"/cases/{safety}/resolve",
        data={"csrf": csrf, "category": "safety_compliance", "note": "confirmed"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/queues?done={safety}"
    page = client.get(r.headers["location"]).text
    assert "has left the queue" in page
    assert not re.search(rf'href="/cases/{safety}">', page.split("has left the queue")[1])
    stored = client.get(f"/decisions/{safety}").json()
    assert stored["reviews"][0]["reviewer"] == "dev-reviewer"
    keys = [h["idempotency_key"] for h in stored["handoffs"]]
    assert keys.count(f"{safety}:report_to_safety_db") == 1


def test_an_auditor_reads_queues_but_cannot_work_them(served: Served) -> None:
    safety = _case(
        served,
        "I had a bad reaction to the tablets",
        Scripted.label(Category.SAFETY_COMPLIANCE, 0.9),
    )
    client = served.client
    _login(client, "auditor")
    assert safety[:12] in client.get("/queues").text
    assert "Claim this case" not in client.get(f"/cases/{safety}").text
    r = client.post(
        f"/cases/{safety}/claim", data={"csrf": client.cookies["sb_csrf"]}, headers=HTML
    )
    assert r.status_code == 403
    _login(client, "admin")
    assert client.get("/queues", headers=HTML).status_code == 403


def test_case_page_words_for_each_path_step() -> None:
    from service.workbench.explain import step_in_words

    record = {"channel": "email"}
    steps = {
        ("model", "label", "service_action p=0.720"): "as service action",
        ("threshold", "accepted", "0.910 >= 0.3"): "30% confidence this policy asks for on the "
        "email channel (91%)",
        ("threshold", "safety_escalation", "p(safety)=0.400 >= 0.35"): "safety matter (40%)",
        ("threshold", "below_threshold", "0.500 < 0.55: service_action, human review"): "55% bar",
        ("model", "timeout", "model timeout"): "no usable answer",
        ("rule", "routed", "informational -> service_action"): "from informational",
        ("rule", "suppressed", "r1: safety is never routed away"): "Rule r1 would have",
        ("rule", "kw-rule", "Adverse words go to safety."): "Rule kw-rule fired",
        ("combine", "fail_closed", "rules unavailable"): "failed safe",
        ("odd", "new_code", "x"): "odd: new_code x",
    }
    for (stage, code, detail), expected in steps.items():
        words = step_in_words({"stage": stage, "code": code, "detail": detail}, record)
        assert expected in words, words


def test_a_reviewer_sees_only_their_queues_and_tenant(world: World) -> None:
    key, _ = world.store.create(
        "acme", Role.REVIEWER, name="pv-only", queues=frozenset({"pharmacovigilance"})
    )
    with httpx.Client(base_url=world.url, timeout=30) as browser:
        browser.get("/login")
        browser.post("/login", data={"csrf": browser.cookies["sb_csrf"], "key": key})
        page = browser.get("/queues").text
        assert "Pharmacovigilance" in page
        assert "Service desk" not in page
        assert world.pending["acme"][:12] not in page  # a service_desk case
        assert browser.get(f"/cases/{world.pending['acme']}", headers=HTML).status_code == 404
        acme = world.auth("acme", Role.REVIEWER)["Authorization"].removeprefix("Bearer ")
        browser.cookies.clear()
        browser.get("/login")
        browser.post("/login", data={"csrf": browser.cookies["sb_csrf"], "key": acme})
        assert world.pending["acme"][:12] in browser.get("/queues").text
        other = browser.get(f"/cases/{world.pending['globex']}", headers=HTML)
        assert other.status_code == 404  # another tenant's case: exactly like a missing one
        assert world.pending["globex"][:12] not in browser.get("/queues").text
