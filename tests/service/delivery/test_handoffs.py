"""The service end to end with a real RabbitMQ: a decision's hand-offs reach their queue only
after the record is committed; a failed commit hands off nothing and answers the documented 503;
a reviewer's outcome hands the next step off exactly once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine.backends.fake import Scripted
from engine.categories import Category
from tests.service.conftest import Served, ServeFactory
from tests.service.delivery.rabbit import RABBIT_URL, Names, clean_up, drain, rabbit_or_skip

pytestmark = pytest.mark.rabbitmq
KEYS = (
    "dispatch.ticketing",
    "dispatch.knowledge_base",
    "dispatch.pharmacovigilance_db",
    "review.pharmacovigilance",
    "review.service_desk",
    "review.agent_review",
)


@pytest.fixture
def names() -> Iterator[Names]:
    rabbit_or_skip()
    n = Names()
    yield n
    asyncio.run(clean_up(RABBIT_URL, n, KEYS))


@pytest.fixture
def brokered(make_served: ServeFactory, names: Names) -> Served:
    return make_served(
        broker_url=RABBIT_URL,
        broker_exchange=names.exchange,
        broker_queue_prefix=names.queue_prefix,
        delivery_poll_s=0.2,
    )


def _settled(served: Served, timeout_s: float = 20) -> dict[str, Any]:
    """Wait until the outbox has nothing pending; the admin view of it."""
    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = served.client.get("/admin/outbox", headers=served.admin()).json()
        if status["pending"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _queue(names: Names, key: str) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in asyncio.run(drain(RABBIT_URL, names.queue(key)))]


def test_a_decision_is_handed_off_after_it_is_recorded(brokered: Served, names: Names) -> None:
    r = brokered.client.post("/classify", json={"message": "where is my order 7?"})
    assert r.status_code == 200
    decision = r.json()
    [handoff] = decision["handoffs"]
    assert handoff["routing_key"] == "dispatch.ticketing"
    assert _settled(brokered)["pending"] == 0
    [message] = _queue(names, "dispatch.ticketing")
    assert message == handoff
    assert message["idempotency_key"] == f"{decision['decision_id']}:create_ticket"
    stored = brokered.client.get(f"/decisions/{decision['decision_id']}").json()
    assert [(h["idempotency_key"], h["state"]) for h in stored["handoffs"]] == [
        (message["idempotency_key"], "delivered")
    ]
    metrics = brokered.client.get("/metrics").text
    assert 'switchboard_handoffs_delivered_total{routing_key="dispatch.ticketing"} 1.0' in metrics


def test_a_failed_commit_hands_nothing_off(brokered: Served, names: Names) -> None:
    db = brokered.settings.audit_db
    with sqlite3.connect(db) as conn:  # the disk "fills up" for decisions, as another writer sees
        conn.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON decisions "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    refused = brokered.client.post("/classify", json={"message": "cancel order 1"})
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Audit store unavailable"
    assert refused.headers["retry-after"] == "1"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER fail")
    ok = brokered.client.post("/classify", json={"message": "cancel order 2"}).json()
    assert _settled(brokered)["pending"] == 0
    delivered = _queue(names, "dispatch.ticketing")
    assert [m["decision_id"] for m in delivered] == [ok["decision_id"]]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone() == (1,)


def test_a_review_hands_off_the_next_step_exactly_once(brokered: Served, names: Names) -> None:
    brokered.backend.enqueue(Scripted.label(Category.SAFETY_COMPLIANCE, 0.95))
    case = brokered.client.post(
        "/classify", json={"message": "I got a rash after the second dose"}
    ).json()
    assert case["workflow"]["next_step"] == "pv_review"
    review = {"category": "safety_compliance", "note": "confirmed"}  # reviewer: the credential's
    first = brokered.client.post(f"/reviews/{case['decision_id']}", json=review)
    again = brokered.client.post(f"/reviews/{case['decision_id']}", json=review)
    assert first.status_code == again.status_code == 201
    key = f"{case['decision_id']}:report_to_safety_db"
    assert first.json()["handoffs"] == again.json()["handoffs"] == [key]
    assert _settled(brokered)["pending"] == 0
    [queued] = _queue(names, "review.pharmacovigilance")
    assert queued["step"] == "pv_review"
    [report] = _queue(names, "dispatch.pharmacovigilance_db")  # once, not twice
    assert report["idempotency_key"] == key
    assert report["cause"] == "review"
    assert report["payload"]["case_id"] == f"case-{case['decision_id']}"
    # auth off (the fixture): the caller is the dev tenant's "dev", never a name from the body
    assert report["payload"]["review"] == {"category": "safety_compliance", "reviewer": "dev"}


def test_a_category_change_runs_the_new_workflow_from_its_after_review_step(
    brokered: Served, names: Names
) -> None:
    unsure = {Category.INFORMATIONAL: 0.35, Category.SERVICE_ACTION: 0.5}
    brokered.backend.enqueue(Scripted({**unsure, Category.SAFETY_COMPLIANCE: 0.15}))
    decision = brokered.client.post("/classify", json={"message": "my thing is odd"}).json()
    assert decision["workflow"]["queue"] == "service_desk"
    moved = {"category": "informational", "note": "a question"}
    r = brokered.client.post(f"/reviews/{decision['decision_id']}", json=moved)
    assert r.json()["handoffs"] == [f"{decision['decision_id']}:answer"]
    assert _settled(brokered)["pending"] == 0
    [answer] = _queue(names, "dispatch.knowledge_base")
    assert (answer["category"], answer["payload"]["decided_category"]) == (
        "informational",
        "service_action",
    )
    assert _queue(names, "dispatch.ticketing") == []


def test_the_admin_outbox_route_needs_an_admin_credential(make_served: ServeFactory) -> None:
    served = make_served(auth="on")  # the matrix covers the other roles (403)
    assert httpx.get(f"{served.url}/admin/outbox").status_code == 401
    assert served.client.get("/admin/outbox", headers=served.admin()).status_code == 200
