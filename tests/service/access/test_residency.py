"""Residency against two real PostgreSQL databases (sb12_eu, sb12_us) on the local server.

Each tenant's rows land only in its region's database; a replica serving one region refuses the
other region's tenant with 421 and stores nothing. Every run uses its own schema in each database
(dropped afterwards), so concurrent runs do not collide. The server is the one of
``SWITCHBOARD_TEST_POSTGRES``; where none answers the test skips, except under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.access.keys import KeyStore
from service.access.principal import Role
from service.app import create_app
from service.settings import Settings
from tests.service.access.conftest import policy_tree, write_tenant
from tests.service.conftest import serve

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

ADMIN_URL = os.environ.get("SWITCHBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SERVER = ADMIN_URL.rsplit("/", 1)[0]
DATABASES = {"eu": "sb12_eu", "us": "sb12_us"}


def _ensure_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # A concurrent run may create it first.
            with contextlib.suppress(
                psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
            ):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _server_or_skip() -> None:
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        message = f"PostgreSQL at {ADMIN_URL} is not reachable ({exc.__class__.__name__})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must run the residency test")
        pytest.skip(f"{message}; start it or set SWITCHBOARD_TEST_POSTGRES")


@pytest.fixture
def regions() -> Iterator[dict[str, str]]:
    """region -> URL of a fresh schema in that region's database."""
    _server_or_skip()
    schema = f"sb12_{uuid.uuid4().hex[:10]}"
    urls = {}
    for region, database in DATABASES.items():
        _ensure_database(database)
        with psycopg.connect(f"{SERVER}/{database}", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        urls[region] = f"{SERVER}/{database}?options={quote(f'-csearch_path={schema}')}"
    yield urls
    for database in DATABASES.values():
        with psycopg.connect(f"{SERVER}/{database}", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _counts(urls: dict[str, str]) -> dict[str, dict[str, int]]:
    out = {}
    for region, url in urls.items():
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT tenant, COUNT(*) FROM decisions GROUP BY tenant").fetchall()
        out[region] = {tenant: int(n) for tenant, n in rows}
    return out


def _settings(root: Path, stores: dict[str, str]) -> Settings:
    return Settings(
        policies=root / "policies",
        tenants=root / "tenants",
        audit_dbs=stores,
        region=next(iter(stores)),
        keys_db=str(root / "keys.db"),
        backend="fake",
        warm_up=False,
    )


def test_each_tenant_is_stored_only_in_its_region(tmp_path: Path, regions: dict[str, str]) -> None:
    policy_tree(tmp_path)
    write_tenant(tmp_path / "tenants", "beurre", region="eu")
    write_tenant(tmp_path / "tenants", "maple", region="us")
    keys = KeyStore(str(tmp_path / "keys.db"))
    client = {t: keys.create(t, Role.CLIENT)[0] for t in ("beurre", "maple")}
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.95))

    def classify(url: str, tenant: str) -> httpx.Response:
        return httpx.post(
            url + "/classify",
            json={"message": "where is my order?"},
            headers={"Authorization": f"Bearer {client[tenant]}"},
            timeout=30,
        )

    def read(url: str, tenant: str, decision_id: str) -> int:
        headers = {"Authorization": f"Bearer {client[tenant]}"}
        return httpx.get(f"{url}/decisions/{decision_id}", headers=headers, timeout=30).status_code

    both = create_app(_settings(tmp_path, regions), backend=backend, redactor_factory=None)
    with serve(both) as url:
        for _ in range(3):
            assert classify(url, "beurre").status_code == 200
        for _ in range(2):
            made = classify(url, "maple")
            assert made.status_code == 200
        maples = made.json()["decision_id"]
        assert read(url, "maple", maples) == 200  # read back from the us database
        assert read(url, "beurre", maples) == 404
    after_both = _counts(regions)
    print("rows per database after the two-region replica:", after_both)
    assert after_both == {"eu": {"beurre": 3}, "us": {"maple": 2}}

    eu_only = create_app(
        _settings(tmp_path, {"eu": regions["eu"]}), backend=backend, redactor_factory=None
    )
    with serve(eu_only) as url:
        refused = classify(url, "maple")
        assert refused.status_code == 421
        assert "region us" in refused.json()["detail"]
        assert classify(url, "beurre").status_code == 200
        assert read(url, "maple", maples) == 421  # not read here either
    after_eu = _counts(regions)
    print("rows per database after the eu-only replica:", after_eu)
    assert after_eu == {"eu": {"beurre": 4}, "us": {"maple": 2}}
    keys.close()
