"""The audit store: every decision and review outcome, durable before the service answers.

``SWITCHBOARD_AUDIT_DB`` names the store:

- ``postgresql://…`` or ``postgres://…`` (any libpq URL): ``PostgresAuditStore``; several
  replicas can share it.
- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path: the embedded
  ``SQLiteAuditStore`` (one process only).

``store.py`` is the contract, ``rows.py`` the row encoding and read queries both databases share,
``database.py`` the core every query runs through (placeholders, reads, the writer),
``claims.py``, ``outbox.py`` and ``shadow.py`` a table each with its statements and queries,
``search.py`` the decision search (filter, keyset cursor, statement),
``group_commit.py`` the writer thread both use; one module per database.
"""

from __future__ import annotations

from pathlib import Path

from engine import AuditStoreError
from service.audit.claims import Claim
from service.audit.search import (
    Cursor,
    CursorError,
    DecisionFilter,
    DecisionSummary,
    ReviewState,
    SearchPage,
)
from service.audit.sqlite import SQLiteAuditStore
from service.audit.store import (
    AccessRecord,
    AuditStore,
    Backlog,
    LabelledReview,
    PendingReview,
    RecordedDecision,
    ReviewOutcome,
    Tally,
    now_iso,
)

__all__ = [
    "AccessRecord",
    "AuditStore",
    "Backlog",
    "Claim",
    "Cursor",
    "CursorError",
    "DecisionFilter",
    "DecisionSummary",
    "LabelledReview",
    "PendingReview",
    "RecordedDecision",
    "ReviewOutcome",
    "ReviewState",
    "SQLiteAuditStore",
    "SearchPage",
    "Tally",
    "now_iso",
    "open_store",
    "sqlite_path",
    "store_kind",
]

_POSTGRES = ("postgresql://", "postgres://")
_SQLITE = "sqlite:///"


def store_kind(url: str) -> str:
    """``"postgres"`` or ``"sqlite"``; raises ``AuditStoreError`` for any other scheme."""
    lowered = url.lower()
    if lowered.startswith(_POSTGRES):
        return "postgres"
    if lowered.startswith(_SQLITE) or "://" not in url:
        return "sqlite"
    scheme = url.split("://", 1)[0]
    raise AuditStoreError(
        f"unsupported audit store URL scheme {scheme!r}: use a file path, sqlite:///path "
        "or postgresql://user@host:port/db"
    )


def sqlite_path(url: str) -> Path:
    return Path(url[len(_SQLITE) :]) if url.lower().startswith(_SQLITE) else Path(url)


def open_store(url: str, *, read_only: bool = False) -> AuditStore:
    """Open the audit store that ``url`` names (creating it unless ``read_only``)."""
    if store_kind(url) == "postgres":
        from service.audit.postgres import PostgresAuditStore  # psycopg only when asked for

        return PostgresAuditStore(url, read_only=read_only)
    return SQLiteAuditStore(sqlite_path(url), read_only=read_only)
