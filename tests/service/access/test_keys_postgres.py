"""The keys store on PostgreSQL (what several replicas share): create, verify, rotate, revoke.

Runs in a schema of its own on the server of ``SWITCHBOARD_TEST_POSTGRES`` (dropped afterwards);
skips where none answers, except under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from service.access.keys import KeyStore
from service.access.principal import Role

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

URL = os.environ.get("SWITCHBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def store() -> Iterator[KeyStore]:
    try:
        psycopg.connect(URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        message = f"PostgreSQL at {URL} is not reachable ({exc.__class__.__name__})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must run the keys store on PostgreSQL")
        pytest.skip(message)
    schema = f"sb12_keys_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    keys = KeyStore(f"{URL}?options=-csearch_path%3D{schema}")
    try:
        yield keys
    finally:
        keys.close()
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_keys_on_postgres_verify_rotate_and_revoke(store: KeyStore) -> None:
    key, info = store.create("acme", Role.REVIEWER, name="pv-7", queues=frozenset({"pv"}))
    found = store.verify(key)
    assert found is not None
    assert (found.tenant, found.role, found.queues, found.name) == (
        "acme",
        Role.REVIEWER,
        frozenset({"pv"}),
        "pv-7",
    )
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    new_key, new_info = store.rotate(info.key_id)
    assert store.verify(key) is None
    assert store.verify(new_key) is not None
    store.revoke(new_info.key_id)
    assert store.verify(new_key) is None
    assert [(i.key_id, i.revoked_at is not None) for i in store.listing("acme")] == [
        (info.key_id, True),
        (new_info.key_id, True),
    ]
