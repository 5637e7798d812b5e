"""Reload, rollback and auth over real HTTP: a bad policy never takes effect."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.backends.fake import Scripted
from engine.categories import Category
from engine.pii.presidio import PresidioRedactor
from tests.conftest import Editor, break_the_build
from tests.service.conftest import TOKEN, Served, ServeFactory


def _revision(served: Served) -> str:
    body = served.client.get("/admin/policies", headers=served.admin()).json()
    revision: str = body["active"][0]["revision"]
    return revision


def test_admin_needs_the_bearer_token(make_served: ServeFactory) -> None:
    served = make_served(auth="on")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = served.client.post("/admin/reload", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.headers["content-type"] == "application/problem+json"


def test_admin_routes_need_a_credential_without_a_token(make_served: ServeFactory) -> None:
    served = make_served(admin_token=None, auth="on")
    assert served.client.get("/admin/policies").status_code == 401
    wrong = {"Authorization": f"Bearer {TOKEN}"}  # no token configured: it is not a credential
    assert served.client.get("/admin/policies", headers=wrong).status_code == 401


def test_threshold_edit_takes_effect_on_reload_and_rolls_back(
    served: Served, edit_policy: Editor
) -> None:
    message = {"message": "Where is my parcel?"}
    served.backend.default = Scripted.label(Category.SERVICE_ACTION, 0.6)
    before = _revision(served)
    assert served.client.post("/classify", json=message).json()["requires_human_review"] is False

    edit_policy("policy.yaml", lambda d: d["thresholds"].update(service_action=0.7))
    r = served.client.post("/admin/reload", headers=served.admin())
    assert r.status_code == 200, r.text
    after = _revision(served)
    assert after != before
    decision = served.client.post("/classify", json=message).json()
    assert decision["policy"]["revision"] == after
    assert decision["requires_human_review"] is True

    r = served.client.post("/admin/rollback", headers=served.admin())
    assert r.status_code == 200
    assert _revision(served) == before
    decision = served.client.post("/classify", json=message).json()
    assert decision["policy"]["revision"] == before
    assert decision["requires_human_review"] is False


def test_broken_policy_is_refused_and_old_one_keeps_serving(
    served: Served, policy_copy: Path
) -> None:
    before = _revision(served)
    (policy_copy / "policy.yaml").write_text(
        (policy_copy / "policy.yaml")
        .read_text("utf-8")
        .replace("informational: 0.55", "informational: 1.55"),
        "utf-8",
    )
    r = served.client.post("/admin/reload", headers=served.admin())
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert any("thresholds.informational" in p for p in r.json()["problems"])
    status = served.client.get("/admin/policies", headers=served.admin()).json()
    assert status["active"][0]["revision"] == before
    assert status["last_reload_error"]["problems"]
    ok = served.client.post("/classify", json={"message": "hello"})
    assert ok.status_code == 200
    assert ok.json()["policy"]["revision"] == before


def test_a_policy_that_fails_to_build_is_refused_with_every_problem(
    make_served: ServeFactory, edit_policy: Editor
) -> None:
    served = make_served(redactor_factory=PresidioRedactor)
    before = _revision(served)
    break_the_build(edit_policy)
    r = served.client.post("/admin/reload", headers=served.admin())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problems = r.json()["problems"]
    assert any("redaction.entities[0]" in p and "PERSON" in p for p in problems), problems
    assert any("too-wide" in p and "rules.yaml:" in p for p in problems), problems
    status = served.client.get("/admin/policies", headers=served.admin()).json()
    assert status["active"][0]["revision"] == before
    assert status["last_reload_error"]["problems"] == problems
    assert status["reload_failures"] == 1
    ok = served.client.post("/classify", json={"message": "hello"})
    assert ok.status_code == 200
    assert ok.json()["policy"]["revision"] == before


def test_rollback_without_history_is_409(served: Served) -> None:
    assert served.client.post("/admin/rollback", headers=served.admin()).status_code == 409


def test_metrics_name_only_the_active_revision(served: Served, edit_policy: Editor) -> None:
    before = _revision(served)
    edit_policy("policy.yaml", lambda d: d["thresholds"].update(service_action=0.7))
    assert served.client.post("/admin/reload", headers=served.admin()).status_code == 200
    after = _revision(served)
    metrics = served.client.get("/metrics").text
    assert f'revision="{after}"' in metrics
    assert f'revision="{before}"' not in metrics
    assert 'switchboard_reloads_total{result="ok"} 1.0' in metrics


def test_in_flight_request_finishes_on_the_revision_it_started_with(
    make_served: ServeFactory, edit_policy: Editor
) -> None:
    import threading

    from engine.backends.fake import FakeBackend

    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9), latency_s=1.0)
    served = make_served(backend)
    before = _revision(served)
    result: dict[str, Any] = {}

    def slow_request() -> None:
        result.update(served.client.post("/classify", json={"message": "where is it"}).json())

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.3)  # the request is now waiting on the model
    edit_policy("policy.yaml", lambda d: d["thresholds"].update(service_action=0.95))
    assert served.client.post("/admin/reload", headers=served.admin()).status_code == 200
    after = _revision(served)
    thread.join(10)
    assert after != before
    assert result["policy"]["revision"] == before
    assert result["requires_human_review"] is False  # decided under the old 0.55 threshold
    fresh = served.client.post("/classify", json={"message": "where is it"}).json()
    assert fresh["policy"]["revision"] == after
    assert fresh["requires_human_review"] is True


def test_the_active_revision_says_who_activated_it_and_what_it_replaced(
    make_served: ServeFactory, edit_policy: Editor
) -> None:
    served = make_served(auth="on")
    start = served.client.get("/admin/policies", headers=served.admin()).json()
    (first,) = start["active"]
    assert (first["activated_by"], first["action"], first["previous"]) == (
        "start-up",
        "start",
        None,
    )

    edit_policy("policy.yaml", lambda d: d["thresholds"].update(service_action=0.7))
    assert served.client.post("/admin/reload", headers=served.admin()).status_code == 200
    edit_policy("policy.yaml", lambda d: d["thresholds"].update(service_action=1.7))
    assert served.client.post("/admin/reload", headers=served.admin()).status_code == 422

    status = served.client.get("/admin/policies", headers=served.admin()).json()
    (active,) = status["active"]
    assert active["activated_by"] == "admin-token"  # the caller's subject
    assert active["action"] == "reload"
    assert active["previous"] == {"version": first["version"], "revision": first["revision"]}
    assert status["last_reload_error"]["by"] == "admin-token"
    failed, reloaded, started = status["history"]
    assert failed["action"] == "reload failed"
    assert any("thresholds.service_action" in p for p in failed["problems"])
    assert failed["revisions"][0]["revision"] == active["revision"]  # it still serves
    assert (reloaded["action"], started["action"]) == ("reload", "start")

    assert served.client.post("/admin/rollback", headers=served.admin()).status_code == 200
    back = served.client.get("/admin/policies", headers=served.admin()).json()
    assert back["active"][0]["revision"] == first["revision"]
    assert back["active"][0]["action"] == "rollback"
    assert back["active"][0]["previous"]["revision"] == active["revision"]
    assert back["history"][0]["action"] == "rollback"
    assert back["last_reload_error"] is None  # it described a revision that no longer serves
    assert back["history"][1]["action"] == "reload failed"


def test_a_broken_tenant_file_is_a_failed_reload_with_who_asked(
    make_served: ServeFactory, policy_copy: Path
) -> None:
    served = make_served(auth="on")
    tenants = policy_copy.parent.parent / "tenants"
    (tenants / "broken.yaml").write_text("id: broken\nregion: [not, a, region]\n", "utf-8")

    r = served.client.post("/admin/reload", headers=served.admin())

    assert r.status_code == 422, r.text
    status = served.client.get("/admin/policies", headers=served.admin()).json()
    assert status["last_reload_error"]["by"] == "admin-token"
    assert any("broken.yaml" in p for p in status["last_reload_error"]["problems"])
    assert status["history"][0]["action"] == "reload failed"
    assert status["reload_failures"] == 1
