"""Which audit store a URL names: ``SWITCHBOARD_AUDIT_DB`` selects SQLite or PostgreSQL.

- ``postgresql://…`` or ``postgres://…`` (any libpq URL): ``PostgresAuditStore``; several
  replicas can share it.
- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path: the embedded
  ``SQLiteAuditStore`` (one process only).
"""

from __future__ import annotations

from pathlib import Path

from service.store import AuditStore, SQLiteAuditStore

_POSTGRES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"


def store_kind(url: str) -> str:
    """``"postgres"`` or ``"sqlite"``; raises ``ValueError`` for any other scheme."""
    lowered = url.lower()
    if lowered.startswith(_POSTGRES):
        return "postgres"
    if lowered.startswith(_SQLITE) or "://" not in url:
        return "sqlite"
    scheme = url.split("://", 1)[0]
    raise ValueError(
        f"unsupported audit store URL scheme {scheme!r}: use a file path, sqlite:///path "
        "or postgresql://user@host:port/db"
    )


def sqlite_path(url: str) -> Path:
    return Path(url[len(_SQLITE) :]) if url.lower().startswith(_SQLITE) else Path(url)


def open_store(url: str) -> AuditStore:
    """Open (and create if needed) the audit store that ``url`` names."""
    if store_kind(url) == "postgres":
        from service.store_postgres import PostgresAuditStore  # psycopg only when asked for

        return PostgresAuditStore(url)
    return SQLiteAuditStore(sqlite_path(url))
