"""One end-to-end path on the real embedded model: HTTP in, redaction, model, rules, audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.backends.registry import BackendSettings, build_backend
from engine.pii.presidio import PresidioRedactor
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import serve

pytestmark = pytest.mark.model

ADVERSE = (
    "I experienced a severe headache and nausea right after taking the medication. "
    "Call me on +1 415-555-0100."
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("e2e")
    repo = Path(__file__).resolve().parents[2]
    settings = Settings(
        policies=repo / "policies",
        audit_db=str(tmp / "audit.db"),
        auth="off",
        backend="embedded",
        breaker_failures=1000,
        # The suite may share the 2 cores with other work; latency is measured by eval/bench.
        model_queue=16,
    )
    backend = build_backend(BackendSettings(name="embedded"))
    app = create_app(settings, backend=backend, redactor_factory=PresidioRedactor)
    # Start-up warms the ~1k-token prompt prefix: seconds when idle, minutes on a busy machine.
    with serve(app, start_timeout_s=900) as url, httpx.Client(base_url=url, timeout=300) as c:
        yield c


def test_adverse_event_end_to_end(client: httpx.Client) -> None:
    assert client.get("/readyz").status_code == 200
    r = client.post("/classify", json={"message": ADVERSE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["category"] == "safety_compliance"
    assert body["requires_human_review"] is True
    assert body["next_step"] == "pv_review"
    assert body["model"]["backend"] == "embedded"
    stored = client.get(f"/decisions/{body['decision_id']}").json()["record"]
    assert "415-555-0100" not in stored["input_redacted"]
    assert "<PHONE_NUMBER>" in stored["input_redacted"]
    pending = client.get("/reviews").json()["pending"]
    assert body["decision_id"] in {p["decision_id"] for p in pending}
