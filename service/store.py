"""The audit store: append-only decision records and review outcomes, durable before the response.

``AuditStore`` is the interface; ``SQLiteAuditStore`` is the embedded default (WAL, synchronous
FULL, group commit from one writer thread, append-only enforced by triggers). PostgreSQL takes
over for several replicas through the same interface.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from engine.record import DecisionRecord
from service.audit_writer import GroupCommitWriter, Work


@dataclass(frozen=True)
class ReviewOutcome:
    decision_id: str
    category: str
    note: str
    reviewer: str
    created_at: str


@dataclass(frozen=True)
class PendingReview:
    decision_id: str
    created_at: str
    category: str
    policy_revision: str
    queue: str | None


class AuditStore(Protocol):
    async def append(self, record: DecisionRecord) -> None:
        """Return only once the record is durable."""
        ...

    async def get(self, decision_id: str) -> dict[str, Any] | None: ...

    async def add_review(self, outcome: ReviewOutcome) -> None: ...

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]: ...

    async def pending_reviews(self, limit: int) -> list[PendingReview]: ...

    async def labelled(self, limit: int) -> list[tuple[str, str, str]]:
        """(decision_id, redacted text, reviewer's category) for evaluation."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


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
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
"""


def decision_row(record: DecisionRecord) -> tuple[Any, ...]:
    """The indexed columns of a decision, then the whole record as JSON (both stores)."""
    queue_name = record.workflow.queue if record.workflow.status == "awaiting_review" else None
    return (
        record.decision_id,
        record.created_at,
        record.policy.id,
        record.policy.revision,
        record.category.value,
        record.requires_human_review,
        queue_name,
        record.degraded,
        record.model_dump_json(),
    )


def review_row(outcome: ReviewOutcome) -> tuple[str, str, str, str, str]:
    """A review outcome's columns, in the order both stores insert them."""
    return (
        outcome.decision_id,
        outcome.category,
        outcome.note,
        outcome.reviewer,
        outcome.created_at,
    )


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class SQLiteAuditStore:
    """SQLite in WAL mode; one writer thread commits whatever is queued as one transaction."""

    def __init__(self, path: Path, *, batch: int = 256) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._writer.executescript(SCHEMA)
        self._read_lock = threading.Lock()
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
        try:
            self._writer.execute("BEGIN IMMEDIATE")
            for sql, params, _ in work:
                self._writer.execute(sql, params)
            self._writer.execute("COMMIT")
        except sqlite3.Error:
            self._writer.execute("ROLLBACK") if self._writer.in_transaction else None
            # Retry one by one so a bad row cannot take the others down with it.
            for sql, params, fut in work:
                try:
                    self._writer.execute(sql, params)
                except sqlite3.Error as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
            return
        for _, _, fut in work:
            fut.set_result(None)

    async def append(self, record: DecisionRecord) -> None:
        await self._group.submit(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", decision_row(record)
        )

    async def add_review(self, outcome: ReviewOutcome) -> None:
        await self._group.submit(
            "INSERT INTO reviews (decision_id, category, note, reviewer, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            review_row(outcome),
        )

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return list(self._reader.execute(sql, params).fetchall())

    async def get(self, decision_id: str) -> dict[str, Any] | None:
        rows = await asyncio.to_thread(
            self._read, "SELECT record FROM decisions WHERE decision_id = ?", (decision_id,)
        )
        return json.loads(rows[0][0]) if rows else None

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]:
        rows = await asyncio.to_thread(
            self._read,
            "SELECT decision_id, category, note, reviewer, created_at FROM reviews "
            "WHERE decision_id = ? ORDER BY id",
            (decision_id,),
        )
        return [ReviewOutcome(*row) for row in rows]

    async def pending_reviews(self, limit: int) -> list[PendingReview]:
        rows = await asyncio.to_thread(
            self._read,
            "SELECT d.decision_id, d.created_at, d.category, d.policy_revision, d.review_queue "
            "FROM decisions d WHERE d.requires_human_review = 1 AND NOT EXISTS "
            "(SELECT 1 FROM reviews r WHERE r.decision_id = d.decision_id) "
            "ORDER BY d.created_at LIMIT ?",
            (limit,),
        )
        return [PendingReview(*row) for row in rows]

    async def labelled(self, limit: int) -> list[tuple[str, str, str]]:
        rows = await asyncio.to_thread(
            self._read,
            "SELECT d.record, r.category FROM reviews r JOIN decisions d USING (decision_id) "
            "WHERE r.id IN (SELECT MAX(id) FROM reviews GROUP BY decision_id) "
            "ORDER BY r.id LIMIT ?",
            (limit,),
        )
        out = []
        for record_json, category in rows:
            record = json.loads(record_json)
            out.append((record["decision_id"], record["input_redacted"], category))
        return out

    async def count(self) -> int:
        rows = await asyncio.to_thread(self._read, "SELECT COUNT(*) FROM decisions")
        return int(rows[0][0])

    async def close(self) -> None:
        await self._group.stop()
        self._writer.close()
        self._reader.close()
