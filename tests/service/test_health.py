"""Readiness means "this replica can give a decision"; the model's health is reported beside it."""

from __future__ import annotations

from pathlib import Path

import httpx

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, VerdictStatus
from service.app import create_app
from service.audit import SQLiteAuditStore
from service.settings import Settings
from tests.conftest import REPO
from tests.service.conftest import ServeFactory, serve


def test_ready_with_the_model_down_and_decisions_degrade(make_served: ServeFactory) -> None:
    backend = FakeBackend(default=Scripted(status=VerdictStatus.ERROR), healthy=False)
    served = make_served(backend, breaker_failures=1, breaker_cooldown_s=60)
    ready = served.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"] == {"healthy": False, "circuit": "closed"}
    assert "switchboard_model_up 0.0" in served.client.get("/metrics").text
    for _ in range(2):
        r = served.client.post("/classify", json={"message": "where is my order"})
        assert r.status_code == 200
        assert r.json()["requires_human_review"] is True
    assert r.json()["degraded"] is True
    assert served.client.get("/readyz").json()["model"]["circuit"] == "open"


def test_healthy_model_is_reported(make_served: ServeFactory) -> None:
    served = make_served(FakeBackend(default=Scripted.label(Category.SERVICE_ACTION)))
    assert served.client.get("/readyz").json()["model"]["healthy"] is True
    assert "switchboard_model_up 1.0" in served.client.get("/metrics").text


def test_not_ready_when_the_audit_store_cannot_commit(policy_copy: Path, tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    settings = Settings(
        policies=policy_copy.parent,
        audit_db=str(tmp_path / "audit.db"),
        warm_up=False,
        tenants=REPO / "tenants",
        auth="off",  # the dev tenant: probes are public anyway
    )
    app = create_app(
        settings,
        backend=FakeBackend(default=Scripted.label(Category.SERVICE_ACTION)),
        store=store,
        redactor_factory=None,
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/readyz").status_code == 200
        # The writer connection is lost the way a full disk or a broken volume loses it.
        assert store._writer is not None
        store._writer.close()
        r = client.get("/readyz")
        assert r.status_code == 503
        assert "audit store" in r.json()["detail"]
        assert r.headers["retry-after"] == "5"


def test_not_ready_when_any_served_regions_store_cannot_commit(
    policy_copy: Path, tmp_path: Path
) -> None:
    settings = Settings(
        policies=policy_copy.parent,
        audit_dbs={"eu": str(tmp_path / "eu.db"), "us": str(tmp_path / "us.db")},
        region="eu",
        warm_up=False,
        tenants=REPO / "tenants",
        auth="off",
    )
    app = create_app(
        settings,
        backend=FakeBackend(default=Scripted.label(Category.SERVICE_ACTION)),
        redactor_factory=None,
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["regions"] == ["eu", "us"]
        us = app.state.switchboard.access.residency.stores["us"]
        assert isinstance(us, SQLiteAuditStore)
        assert us._writer is not None
        us._writer.close()  # not the home region's store: readiness must still see it
        r = client.get("/readyz")
        assert r.status_code == 503
        assert "region us" in r.json()["detail"]
        assert "region eu" not in r.json()["detail"]
