"""API keys: generated once, shown once, stored only as salted SHA-256 hashes.

A key reads ``sbk_<key id>_<secret>``: the id finds the row, the 256-bit secret is checked in
constant time against ``sha256(salt || secret)``. A fast hash is right here because the secret is
random and long (a slow password hash protects guessable passwords, and would cost every request
milliseconds); the salt keeps equal secrets from having equal hashes, and the key id is not a
secret. Revocation is a column: every request reads the row, so it takes effect on the next one.

``SWITCHBOARD_KEYS_DB`` names the store: a SQLite path (one host) or ``postgresql://`` (several
replicas share it). ``switchboard keys`` writes to the same store the service reads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import SwitchboardError
from service.access.principal import Principal, Role
from service.audit import now_iso, sqlite_path, store_kind

PREFIX = "sbk_"
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        salt TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        queues TEXT,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
]
# Statements below are built from these constants only (never from input): hence the S608 noqa.
_COLUMNS = "key_id, tenant, role, queues, name, created_at, revoked_at"


class AccessKeyError(SwitchboardError):
    """A key operation failed (unknown key id, bad role, unreachable store)."""


@dataclass(frozen=True)
class KeyInfo:
    """What is stored about a key, never the key itself."""

    key_id: str
    tenant: str
    role: Role
    queues: frozenset[str] | None
    name: str
    created_at: str
    revoked_at: str | None

    def principal(self) -> Principal:
        return Principal(self.name, self.tenant, frozenset({self.role}), "key", self.queues)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 16 or len(secret) < 32:
        return None
    return key_id, secret


class KeyStore:
    """The keys table in SQLite or PostgreSQL; every call is one short statement."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._postgres = store_kind(url) == "postgres"
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pool: Any = None
        if self._postgres:
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(
                url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
            )
            self._pool.open(wait=True, timeout=10)
        else:
            path = sqlite_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
        for statement in _SCHEMA:
            self._run(statement)

    def _run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._postgres:
            with self._pool.connection() as conn:
                cur = conn.execute(statement.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []
        with self._lock:
            return list(self._conn.execute(statement, params).fetchall())

    def create(
        self, tenant: str, role: Role, *, name: str = "", queues: frozenset[str] | None = None
    ) -> tuple[str, KeyInfo]:
        """A new key (returned once, never stored) and what is stored about it."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        info = KeyInfo(
            key_id, tenant, role, queues, name or f"{role.value}-{key_id}", now_iso(), None
        )
        self._run(
            "INSERT INTO api_keys (key_id, salt, secret_hash, tenant, role, queues, name, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key_id,
                salt,
                _hash(salt, secret),
                tenant,
                role.value,
                None if queues is None else json.dumps(sorted(queues)),
                info.name,
                info.created_at,
            ),
        )
        return f"{PREFIX}{key_id}_{secret}", info

    def verify(self, key: str) -> KeyInfo | None:
        """The key's info if it is well formed, known, not revoked and its secret matches."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        rows = self._run(
            f"SELECT salt, secret_hash, {_COLUMNS} FROM api_keys WHERE key_id = ?",  # noqa: S608
            (key_id,),
        )
        if not rows:
            return None
        salt, expected, *info = rows[0]
        if not hmac.compare_digest(_hash(salt, secret), expected):
            return None
        found = _info(info)
        return None if found.revoked_at is not None else found

    def listing(self, tenant: str | None = None) -> list[KeyInfo]:
        where, params = ("WHERE tenant = ?", (tenant,)) if tenant else ("", ())
        statement = f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at"  # noqa: S608
        rows = self._run(statement, params)
        return [_info(row) for row in rows]

    def get(self, key_id: str) -> KeyInfo:
        statement = f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?"  # noqa: S608
        rows = self._run(statement, (key_id,))
        if not rows:
            raise AccessKeyError(f"no key with id {key_id}; `switchboard keys list` shows them")
        return _info(rows[0])

    def revoke(self, key_id: str) -> KeyInfo:
        self.get(key_id)
        self._run(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (now_iso(), key_id),
        )
        return self.get(key_id)

    def rotate(self, key_id: str, *, revoke_old: bool = True) -> tuple[str, KeyInfo]:
        """A new key with the old one's tenant, role, queues and name; the old one revoked
        unless ``revoke_old`` is False (then revoke it once every client has the new one)."""
        old = self.get(key_id)
        if old.revoked_at is not None:
            raise AccessKeyError(f"key {key_id} is revoked; create a new one instead")
        key, info = self.create(old.tenant, old.role, name=old.name, queues=old.queues)
        if revoke_old:
            self.revoke(key_id)
        return key, info

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._conn is not None:
            self._conn.close()


def _info(row: Sequence[Any]) -> KeyInfo:
    key_id, tenant, role, queues, name, created_at, revoked_at = row
    return KeyInfo(
        key_id,
        tenant,
        Role(role),
        None if queues is None else frozenset(json.loads(queues)),
        name,
        created_at,
        revoked_at,
    )


def default_keys_db(audit_db: str) -> str:
    """Beside a SQLite audit store; in the same PostgreSQL database as a PostgreSQL one."""
    if store_kind(audit_db) == "postgres":
        return audit_db
    return str(Path(sqlite_path(audit_db)).with_name("switchboard-keys.db"))
