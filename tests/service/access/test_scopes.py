"""Beyond the matrix: reviewers' queues, the access audit, and auth off only on loopback."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from engine.cli import main
from service.access.principal import Permission, Principal, Role
from service.cli import _loopback
from tests.service.access.conftest import World


def _accesses(world: World) -> list[tuple[str, str, str, str, list[str]]]:
    conn = sqlite3.connect(world.settings.audit_db)
    try:
        rows = conn.execute(
            "SELECT subject, tenant, role, action, decision_ids FROM accesses ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return [(s, t, r, a, json.loads(ids)) for s, t, r, a, ids in rows]


def test_reads_and_exports_are_recorded_with_who_and_which_ids(world: World) -> None:
    own = world.decisions["acme"]
    headers = world.auth("acme", Role.AUDITOR)
    assert world.client.get(f"/decisions/{own}", headers=headers).status_code == 200
    assert world.client.get("/reviews/export", headers=headers).status_code == 200
    *_, read, export = _accesses(world)
    assert read == ("acme-auditor", "acme", "auditor", "read_decision", [own])
    assert export[:4] == ("acme-auditor", "acme", "auditor", "export")
    assert own in export[4]
    assert world.decisions["globex"] not in export[4]


def test_a_refused_read_is_not_recorded_as_a_read(world: World) -> None:
    before = len(_accesses(world))
    foreign = world.decisions["globex"]
    r = world.client.get(f"/decisions/{foreign}", headers=world.auth("acme", Role.AUDITOR))
    assert r.status_code == 404
    assert len(_accesses(world)) == before


def test_a_reviewer_sees_and_resolves_only_its_queues(world: World) -> None:
    pending = world.pending["acme"]  # waits in the service_desk queue
    other_queue, _ = world.store.create(
        "acme", Role.REVIEWER, name="pv-only", queues=frozenset({"pharmacovigilance"})
    )
    own_queue, _ = world.store.create(
        "acme", Role.REVIEWER, name="desk", queues=frozenset({"service_desk"})
    )
    pv = {"Authorization": f"Bearer {other_queue}"}
    desk = {"Authorization": f"Bearer {own_queue}"}
    assert world.client.get("/reviews", headers=pv).json() == {"pending": []}
    assert world.client.get(f"/decisions/{pending}", headers=pv).status_code == 404
    label = {"category": "service_action"}
    assert world.client.post(f"/reviews/{pending}", json=label, headers=pv).status_code == 404
    listed = world.client.get("/reviews", headers=desk).json()["pending"]
    assert [p["decision_id"] for p in listed] == [pending]
    assert world.client.get(f"/decisions/{pending}", headers=desk).status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False)],  # noqa: S104
)
def test_only_loopback_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert _loopback(host) is loopback


def test_serve_refuses_auth_off_on_a_public_bind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--no-auth"]) == 2  # noqa: S104
    assert "refusing to start" in capsys.readouterr().err


def test_an_author_tries_policies_and_operates_nothing() -> None:
    author = Principal("pat", "acme", frozenset({Role.AUTHOR}), "key")
    admin = Principal("ops", "", frozenset({Role.ADMIN}), "key")
    assert author.may(Permission.TRY_POLICIES)
    assert not author.may(Permission.OPERATE)
    assert not author.may(Permission.READ_DECISIONS)
    assert admin.may(Permission.TRY_POLICIES)
    assert admin.may(Permission.OPERATE)


def test_search_and_export_keep_to_the_tenant_and_the_reviewers_queues(world: World) -> None:
    own = {world.decisions["acme"], world.pending["acme"]}  # both wait in service_desk
    foreign = {world.decisions["globex"], world.pending["globex"]}
    auditor = world.auth("acme", Role.AUDITOR)
    found = world.client.get("/decisions", params={"limit": 500}, headers=auditor).json()
    ids = {d["decision_id"] for d in found["decisions"]}
    assert own <= ids
    assert not foreign & ids
    export = world.client.get("/decisions.csv", headers=auditor)
    exported = {row["decision_id"] for row in csv.DictReader(io.StringIO(export.text))}
    assert exported == ids
    pv_key, _ = world.store.create(
        "acme", Role.REVIEWER, name="pv-search", queues=frozenset({"pharmacovigilance"})
    )
    desk_key, _ = world.store.create(
        "acme", Role.REVIEWER, name="desk-search", queues=frozenset({"service_desk"})
    )
    for key, queue in ((pv_key, "pharmacovigilance"), (desk_key, "service_desk")):
        headers = {"Authorization": f"Bearer {key}"}
        seen = world.client.get("/decisions", headers=headers).json()["decisions"]
        assert {d["review_queue"] for d in seen} <= {queue}
        assert (own <= {d["decision_id"] for d in seen}) is (queue == "service_desk")
        assert world.client.get("/decisions.csv", headers=headers).status_code == 403
    *_, last = _accesses(world)
    assert last[:4] == ("desk-search", "acme", "reviewer", "search_decisions")
