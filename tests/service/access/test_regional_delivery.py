"""Residency meets the transactional outbox (issues 12 and 13): a replica serving two regions
drains both regions' outboxes. A hand-off committed in the non-home region's store is delivered
too, not left pending for ever; the admin routes address either region."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.access.keys import KeyStore
from service.access.principal import Role
from service.app import create_app
from service.delivery.integrations import RecordingIntegrations
from service.settings import Settings
from tests.service.access.conftest import policy_tree, write_tenant
from tests.service.conftest import serve


def _wait_delivered(client: httpx.Client, decision_id: str, key: str) -> list[str]:
    deadline = time.monotonic() + 20
    while True:
        stored = client.get(f"/decisions/{decision_id}", headers={"Authorization": key}).json()
        states = [h["state"] for h in stored["handoffs"]]
        if (states and all(s == "delivered" for s in states)) or time.monotonic() > deadline:
            return states
        time.sleep(0.1)


def test_hand_offs_committed_in_each_region_are_delivered(tmp_path: Path) -> None:
    policy_tree(tmp_path)
    write_tenant(tmp_path / "tenants", "beurre", region="eu")
    write_tenant(tmp_path / "tenants", "maple", region="us")
    keys = KeyStore(str(tmp_path / "keys.db"))
    client_key = {t: f"Bearer {keys.create(t, Role.CLIENT)[0]}" for t in ("beurre", "maple")}
    admin_key = f"Bearer {keys.create('beurre', Role.ADMIN)[0]}"
    keys.close()
    settings = Settings(
        policies=tmp_path / "policies",
        tenants=tmp_path / "tenants",
        audit_dbs={"eu": str(tmp_path / "eu.db"), "us": str(tmp_path / "us.db")},
        region="eu",
        keys_db=str(tmp_path / "keys.db"),
        backend="fake",
        warm_up=False,
        delivery_poll_s=30,  # only the nudge after the commit can deliver in time
    )
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.95))
    sink = RecordingIntegrations()
    app = create_app(settings, backend=backend, redactor_factory=None, integrations=sink)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        made = {}
        for tenant in ("beurre", "maple"):
            r = client.post(
                "/classify",
                json={"message": "where is my order?"},
                headers={"Authorization": client_key[tenant]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["handoffs"], "a service action hands off a ticket"
            made[tenant] = r.json()["decision_id"]
        for tenant, decision_id in made.items():
            assert _wait_delivered(client, decision_id, client_key[tenant]) == ["delivered"]
        assert sorted(m["decision_id"] for m in sink.delivered) == sorted(made.values())
        admin = {"Authorization": admin_key}
        assert client.get("/admin/outbox", headers=admin).json()["pending"] == 0
        us = client.get("/admin/outbox", params={"region": "us"}, headers=admin)
        assert us.status_code == 200
        assert us.json()["pending"] == 0
        nowhere = client.get("/admin/outbox", params={"region": "mars"}, headers=admin)
        assert nowhere.status_code == 404
        metrics = client.get("/metrics").text
        assert 'switchboard_outbox_region_pending{region="us"} 0.0' in metrics
