"""Claims over HTTP: two reviewers claiming one case at once, exactly one wins; only the holder
resolves; the outcome's hand-off is committed once. Against SQLite and a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.access.keys import KeyStore
from service.access.principal import Role
from service.app import create_app
from service.audit import AuditStore, SQLiteAuditStore
from service.settings import Settings
from tests.service.access.conftest import policy_tree, write_tenant
from tests.service.audit.test_stores import POSTGRES_URL, _postgres_or_skip
from tests.service.conftest import serve

ADVERSE = "I had a bad reaction to the tablets and my face swelled"


@dataclass
class Desk:
    client: httpx.Client
    keys: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def safety_case(self) -> str:
        r = self.client.post("/classify", json={"message": ADVERSE}, headers=self.auth("client"))
        assert r.status_code == 200, r.text
        assert r.json()["workflow"]["queue"] == "pharmacovigilance"
        return str(r.json()["decision_id"])


def _store(kind: str, tmp_path: Path) -> tuple[AuditStore, str | None]:
    if kind == "sqlite":
        return SQLiteAuditStore(tmp_path / "audit.db"), None
    _postgres_or_skip()
    from service.audit.postgres import PostgresAuditStore

    schema = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    return PostgresAuditStore(POSTGRES_URL, schema=schema), schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    store, schema = _store(request.param, tmp_path)
    write_tenant(tmp_path / "tenants", "acme")
    settings = Settings(
        policies=policy_tree(tmp_path),
        tenants=tmp_path / "tenants",
        audit_db=str(tmp_path / "audit.db"),
        keys_db=str(tmp_path / "keys.db"),
        default_policy="contact-center",
        backend="fake",
        warm_up=False,
        auth="on",
    )
    keys = KeyStore(settings.keys_url())
    names = {"ann": Role.REVIEWER, "bob": Role.REVIEWER, "client": Role.CLIENT}
    issued = {name: keys.create("acme", role, name=name)[0] for name, role in names.items()}
    keys.close()
    backend = FakeBackend(default=Scripted.label(Category.SAFETY_COMPLIANCE, 0.9))
    app = create_app(settings, backend=backend, store=store, redactor_factory=None)
    try:
        with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            yield Desk(client, issued)
    finally:
        if schema is not None:
            import psycopg
            from psycopg import sql

            with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
                pg.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_two_reviewers_claim_at_once_and_exactly_one_wins(desk: Desk) -> None:
    for _ in range(10):
        case = desk.safety_case()
        start = threading.Barrier(2)

        def claim(who: str, case: str = case, start: threading.Barrier = start) -> int:
            start.wait()
            r = desk.client.post(f"/reviews/{case}/claim", headers=desk.auth(who))
            return r.status_code

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(claim, ["ann", "bob"]))
        assert statuses == [200, 409]


def test_only_the_holder_resolves_and_the_hand_off_is_committed_once(desk: Desk) -> None:
    case = desk.safety_case()
    r = desk.client.post(f"/reviews/{case}/claim", headers=desk.auth("ann"))
    assert r.status_code == 200
    assert r.json()["holder"] == "ann"
    refused = desk.client.post(f"/reviews/{case}/claim", headers=desk.auth("bob"))
    assert refused.status_code == 409
    assert "ann is working this case" in refused.json()["detail"]
    confirm = {"category": "safety_compliance", "note": "confirmed"}
    assert (
        desk.client.post(f"/reviews/{case}", json=confirm, headers=desk.auth("bob")).status_code
        == 409
    )
    assert desk.client.delete(f"/reviews/{case}/claim", headers=desk.auth("bob")).status_code == (
        409
    )
    done = desk.client.post(f"/reviews/{case}", json=confirm, headers=desk.auth("ann"))
    assert done.status_code == 201, done.text
    assert done.json()["handoffs"] == [f"{case}:report_to_safety_db"]
    # Resolved: no claim is left, and a second outcome does not commit the hand-off again.
    again = desk.client.post(f"/reviews/{case}", json=confirm, headers=desk.auth("bob"))
    assert again.status_code == 201
    record = desk.client.get(f"/decisions/{case}", headers=desk.auth("ann")).json()
    keys = [h["idempotency_key"] for h in record["handoffs"]]
    assert keys.count(f"{case}:report_to_safety_db") == 1
    pending = desk.client.get("/reviews", headers=desk.auth("ann")).json()["pending"]
    assert case not in {p["decision_id"] for p in pending}


def test_a_released_case_can_be_claimed_by_another(desk: Desk) -> None:
    case = desk.safety_case()
    assert desk.client.post(f"/reviews/{case}/claim", headers=desk.auth("ann")).status_code == 200
    assert desk.client.delete(f"/reviews/{case}/claim", headers=desk.auth("ann")).status_code == (
        204
    )
    assert desk.client.post(f"/reviews/{case}/claim", headers=desk.auth("bob")).status_code == 200
    # Resolving with nobody's claim in the way needs no claim first (API callers that never
    # claim), and takes it atomically.
    other = desk.safety_case()
    r = desk.client.post(
        f"/reviews/{other}", json={"category": "safety_compliance"}, headers=desk.auth("ann")
    )
    assert r.status_code == 201
