"""PII is redacted before the model, the audit store and the log see a message."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from engine.pii.presidio import PresidioRedactor
from tests.service.conftest import ServeFactory

EMAIL, PHONE, CARD = "jo.smith@example.com", "+1 415-555-0100", "4111 1111 1111 1111"
MESSAGE = f"My refund never came. Mail {EMAIL}, call {PHONE}, card {CARD}."


def test_pii_never_reaches_model_store_or_log(
    make_served: ServeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    served = make_served(redactor_factory=PresidioRedactor)
    with caplog.at_level(logging.INFO, logger="switchboard"):
        r = served.client.post("/classify", json={"message": MESSAGE})
    assert r.status_code == 200
    decision_id = r.json()["decision_id"]

    prompt_text = "\n".join(m.content for m in served.backend.calls[-1].messages)
    stored = served.client.get(f"/decisions/{decision_id}").text
    db_bytes = b"".join(
        p.read_bytes() for p in Path(served.settings.audit_db).parent.glob("audit.db*")
    )
    with sqlite3.connect(served.settings.audit_db) as db:
        dumped = "\n".join(db.iterdump())
    logged = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "decision" in logged
    for secret in (EMAIL, PHONE, CARD, "415-555-0100", "4111"):
        assert secret not in prompt_text
        assert secret not in stored
        assert secret not in dumped
        assert secret.encode() not in db_bytes
        assert secret not in logged
    assert "<EMAIL_ADDRESS>" in prompt_text
    assert "<PHONE_NUMBER>" in stored
    assert "<CREDIT_CARD>" in stored
