"""The human review queue: pending decisions, reviewer outcomes, labelled export."""

from __future__ import annotations

import csv
import io
import sqlite3

import pytest

from engine.backends.fake import Scripted
from engine.categories import Category
from tests.service.conftest import Served


def test_review_flow_and_export(served: Served) -> None:
    unsure_verdict = {
        Category.INFORMATIONAL: 0.35,
        Category.SERVICE_ACTION: 0.5,
        Category.SAFETY_COMPLIANCE: 0.15,
    }
    served.backend.enqueue(Scripted(unsure_verdict))  # below the 0.55 threshold
    served.backend.enqueue(Scripted.label(Category.SERVICE_ACTION, 0.95))
    unsure = served.client.post("/classify", json={"message": "my thing is odd"}).json()
    sure = served.client.post("/classify", json={"message": "cancel order 5"}).json()
    assert unsure["requires_human_review"] is True
    assert sure["requires_human_review"] is False

    pending = served.client.get("/reviews").json()["pending"]
    assert [p["decision_id"] for p in pending] == [unsure["decision_id"]]
    assert pending[0]["queue"] == "service_desk"

    r = served.client.post(
        f"/reviews/{unsure['decision_id']}",
        json={"category": "informational", "note": "just asking"},
    )
    assert r.status_code == 201
    assert served.client.get("/reviews").json()["pending"] == []
    stored = served.client.get(f"/decisions/{unsure['decision_id']}").json()
    assert stored["reviews"][0]["category"] == "informational"

    rows = list(csv.DictReader(io.StringIO(served.client.get("/reviews/export").text)))
    assert rows == [
        {
            "id": unsure["decision_id"],
            "text": "my thing is odd",
            "label": "informational",
            "source": "review",
            "channel": "chat",
            "reviewer": stored["reviews"][0]["reviewer"],
            "reviewed_at": stored["reviews"][0]["created_at"],
            "decided": unsure["category"],
            "policy_revision": unsure["policy"]["revision"],
        }
    ]
    # A reviewer's label never changes the decision already made.
    assert stored["record"]["category"] == unsure["category"]
    assert stored["record"]["category"] != "informational"
    assert (
        served.client.post("/reviews/nope", json={"category": "informational"}).status_code == 404
    )


def test_the_store_refuses_updates_and_deletes(served: Served) -> None:
    decision = served.client.post("/classify", json={"message": "hello"}).json()
    with sqlite3.connect(served.settings.audit_db) as db:
        for sql in ("UPDATE decisions SET category = 'informational'", "DELETE FROM decisions"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)
        count = db.execute(
            "SELECT COUNT(*) FROM decisions WHERE decision_id = ?", (decision["decision_id"],)
        ).fetchone()
    assert count == (1,)
