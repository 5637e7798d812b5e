"""The embedded audit store: SQLite in WAL mode, one process.

Group commit from one writer thread (``group_commit``), ``synchronous=FULL`` so a 200 survives
power loss, append-only enforced by triggers. ``read_only`` opens an existing file for reading
(``switchboard diff --audit-db``) and never creates or writes anything.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import AuditStoreError
from service.audit import claims, outbox, search, shadow
from service.audit.group_commit import GroupCommitWriter, Statement, Work
from service.audit.rows import SqlAuditStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    policy_revision TEXT NOT NULL,
    category TEXT NOT NULL,
    requires_human_review INTEGER NOT NULL,
    review_queue TEXT,
    degraded INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_review ON decisions (requires_human_review, created_at);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    category TEXT NOT NULL,
    note TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_decision ON reviews (decision_id);
CREATE TABLE IF NOT EXISTS accesses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    subject TEXT NOT NULL,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    decision_ids TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS accesses_no_update BEFORE UPDATE ON accesses
BEGIN SELECT RAISE(ABORT, 'accesses are append-only'); END;
CREATE TRIGGER IF NOT EXISTS accesses_no_delete BEFORE DELETE ON accesses
BEGIN SELECT RAISE(ABORT, 'accesses are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
"""


def _add_tenancy(conn: sqlite3.Connection) -> None:
    """Tenant and region columns (issue 12); rows written before them belong to no tenant."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    for column in ("tenant", "region"):
        if column not in columns:
            conn.execute(f"ALTER TABLE decisions ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


class SQLiteAuditStore(SqlAuditStore):
    """SQLite in WAL mode; one writer thread commits whatever is queued as one transaction."""

    _placeholder = "?"
    _dialect = "sqlite"
    _name = "the SQLite audit database"

    def __init__(self, path: Path, *, batch: int = 256, read_only: bool = False) -> None:
        self.path = path
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._group: GroupCommitWriter | None = None
        if read_only:
            if not path.is_file():
                raise AuditStoreError(f"audit database {path} does not exist")
            self._reader = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._writer.executescript(
            SCHEMA + outbox.SQLITE_DDL + claims.SQLITE_DDL + shadow.SQLITE_DDL
        )
        _add_tenancy(self._writer)
        for index in search.INDEXES:
            self._writer.execute(index)
        self._reader = self._connect()
        self._group = GroupCommitWriter(self._commit, batch=batch)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a 200 must survive power loss, not just a crash
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _commit(self, work: list[Work]) -> None:
        writer = self._writer
        assert writer is not None  # only the writable store has a group writer
        try:
            self._transaction(writer, [st for statements, _ in work for st in statements])
        except Exception:  # a constraint, or a value the driver cannot bind (OverflowError)
            # Retry unit by unit so a bad unit cannot take the others down with it.
            for statements, fut in work:
                try:
                    self._transaction(writer, statements)
                except Exception as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
            return
        for _, fut in work:
            fut.set_result(None)

    @staticmethod
    def _transaction(writer: sqlite3.Connection, statements: Sequence[Statement]) -> None:
        try:
            writer.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                writer.execute(sql, params)
            writer.execute("COMMIT")
        except Exception:  # whatever stopped it, the connection must not stay in a transaction
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._read_lock:
                return list(self._reader.execute(statement, params).fetchall())
        except sqlite3.Error as exc:
            raise AuditStoreError(f"cannot read the audit database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._group is not None:
            await self._group.stop()
        if self._writer is not None:
            self._writer.close()
        self._reader.close()
