"""API keys: the CLI prints the key alone, only hashes are stored, revocation is immediate."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from service.access.principal import Role
from tests.conftest import REPO
from tests.service.access.conftest import World


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", "keys", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_the_cli_prints_the_key_alone_and_stores_its_hash(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_AUDIT_DB": str(tmp_path / "audit.db")}
    made = _cli("create", "--tenant", "dev", "--role", "client", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n"
    assert key.startswith("sbk_")
    stored = (
        sqlite3.connect(tmp_path / "switchboard-keys.db")
        .execute("SELECT key_id, secret_hash, salt FROM api_keys")
        .fetchall()
    )
    ((key_id, secret_hash, _),) = stored
    assert key_id in key
    assert key.split("_", 2)[2] not in secret_hash
    assert key not in (tmp_path / "switchboard-keys.db").read_bytes().decode("latin-1")
    listed = _cli("list", env=env)
    assert key_id in listed.stdout
    assert "active" in listed.stdout
    assert key not in listed.stdout
    unknown = _cli("create", "--tenant", "nobody", "--role", "client", env=env)
    assert unknown.returncode == 2
    assert "unknown tenant 'nobody'" in unknown.stderr
    assert unknown.stdout == ""


def test_revocation_and_rotation_take_effect_on_the_next_request(world: World) -> None:
    key, info = world.store.create("acme", Role.AUDITOR, name="rotating")
    headers = {"Authorization": f"Bearer {key}"}
    assert world.client.get("/reviews/export", headers=headers).status_code == 200
    new_key, _ = world.store.rotate(info.key_id)  # a separate process would do the same
    assert world.client.get("/reviews/export", headers=headers).status_code == 401
    fresh = {"Authorization": f"Bearer {new_key}"}
    assert world.client.get("/reviews/export", headers=fresh).status_code == 200
    rotated = world.store.verify(new_key)
    assert rotated is not None
    world.store.revoke(rotated.key_id)
    assert world.client.get("/reviews/export", headers=fresh).status_code == 401


def test_a_tampered_secret_is_refused(world: World) -> None:
    key = world.keys[("acme", Role.CLIENT)]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert world.store.verify(tampered) is None
    r = world.client.get(
        f"/decisions/{world.decisions['acme']}", headers={"Authorization": f"Bearer {tampered}"}
    )
    assert r.status_code == 401


def test_the_legacy_admin_token_is_still_an_admin(world: World) -> None:
    from tests.service.conftest import TOKEN

    token = {"Authorization": f"Bearer {TOKEN}"}
    assert world.client.get("/admin/policies", headers=token).status_code == 200
    assert world.client.get("/reviews", headers=token).status_code == 403


def test_a_refused_key_is_logged_by_its_kind_never_its_value(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="switchboard.access")
    key = world.keys[("acme", Role.AUDITOR)]
    secret = key.split("_", 2)[2]
    for header in (key, f"Bearer {key[:-2]}", f"Basic {key}"):
        r = world.client.get("/reviews/export", headers={"Authorization": header})
        assert r.status_code == 401
    refused = [getattr(r, "fields", {}) for r in caplog.records if r.name == "switchboard.access"]
    assert [f.get("kind") for f in refused] == ["not_bearer", "api_key", "not_bearer"]
    assert not any(secret[:-2] in str(vars(r)) for r in caplog.records)
