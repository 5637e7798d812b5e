"""What both databases share: the row encoding, the statements, and the store around them.

Statements are written once with ``{p}`` for the driver's placeholder (``?`` for SQLite, ``%s``
for psycopg). A database module supplies ``_placeholder``, ``_read`` and a group-commit writer
(``_group``) and inherits every method of the ``AuditStore`` contract but ``close``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from engine import AuditStoreError, DecisionRecord
from engine.decide.record import encode_record
from service.audit.group_commit import GroupCommitWriter
from service.audit.store import PendingReview, RecordedDecision, ReviewOutcome

_INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, created_at, policy_id, policy_revision, category, "
    "requires_human_review, review_queue, degraded, record) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}{json})"
)
_INSERT_REVIEW = (
    "INSERT INTO reviews (decision_id, category, note, reviewer, created_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p})"
)
_GET = "SELECT record FROM decisions WHERE decision_id = {p}"
_REVIEWS_FOR = (
    "SELECT decision_id, category, note, reviewer, created_at FROM reviews "
    "WHERE decision_id = {p} ORDER BY id"
)
_PENDING = (
    "SELECT d.decision_id, d.created_at, d.category, d.policy_revision, d.review_queue "
    "FROM decisions d WHERE d.requires_human_review = TRUE AND NOT EXISTS "
    "(SELECT 1 FROM reviews r WHERE r.decision_id = d.decision_id) "
    "ORDER BY d.created_at LIMIT {p}"
)
_LABELLED = (
    "SELECT d.record, r.category FROM reviews r JOIN decisions d USING (decision_id) "
    "WHERE r.id IN (SELECT MAX(id) FROM reviews GROUP BY decision_id) ORDER BY r.id LIMIT {p}"
)
_RECENT = (
    "SELECT d.record, (SELECT r.category FROM reviews r WHERE r.decision_id = d.decision_id "
    "ORDER BY r.id DESC LIMIT 1) FROM decisions d WHERE d.policy_id = {p} "
    "ORDER BY d.created_at DESC LIMIT {p}"
)
_COUNT = "SELECT COUNT(*) FROM decisions"


def decision_row(record: DecisionRecord, encoded: bytes | None = None) -> tuple[Any, ...]:
    """The columns of a decision, in the order both stores insert them; the record as JSON."""
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
        (encoded if encoded is not None else encode_record(record)).decode(),
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


def _record(value: Any) -> dict[str, Any]:
    """A stored record as data: SQLite gives JSON text, PostgreSQL's JSONB gives a dict."""
    data: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
    return data


class SqlAuditStore:
    """The ``AuditStore`` contract over a database module's ``_read`` and group writer."""

    _placeholder: str
    _json_cast = ""  # PostgreSQL: "::jsonb"
    _group: GroupCommitWriter | None
    _name: str

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _writable(self) -> GroupCommitWriter:
        if self._group is None:
            raise AuditStoreError(f"{self._name} was opened read-only")
        return self._group

    async def append(self, record: DecisionRecord, encoded: bytes | None = None) -> None:
        statement = _INSERT_DECISION.format(p=self._placeholder, json=self._json_cast)
        await self._writable().submit(statement, decision_row(record, encoded))

    async def add_review(self, outcome: ReviewOutcome) -> None:
        statement = _INSERT_REVIEW.format(p=self._placeholder)
        await self._writable().submit(statement, review_row(outcome))

    async def _query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._read, statement.format(p=self._placeholder), params)

    async def get(self, decision_id: str) -> dict[str, Any] | None:
        rows = await self._query(_GET, decision_id)
        return _record(rows[0][0]) if rows else None

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]:
        return [ReviewOutcome(*row) for row in await self._query(_REVIEWS_FOR, decision_id)]

    async def pending_reviews(self, limit: int) -> list[PendingReview]:
        return [PendingReview(*row) for row in await self._query(_PENDING, limit)]

    async def labelled(self, limit: int) -> list[tuple[str, str, str]]:
        out = []
        for value, category in await self._query(_LABELLED, limit):
            record = _record(value)
            out.append((str(record["decision_id"]), str(record["input_redacted"]), category))
        return out

    async def recent(self, policy_id: str, limit: int) -> list[RecordedDecision]:
        rows = await self._query(_RECENT, policy_id, limit)
        return [RecordedDecision(_record(value), reviewed) for value, reviewed in reversed(rows)]

    async def ping(self) -> None:
        # Through the group writer, like a decision: the writer thread is alive, the database
        # takes a write transaction (SQLite: BEGIN IMMEDIATE). A SELECT writes nothing.
        try:
            await self._writable().submit("SELECT 1", ())
        except AuditStoreError:
            raise
        except Exception as exc:
            raise AuditStoreError(f"{self._name} cannot commit: {type(exc).__name__}") from exc

    async def count(self) -> int:
        rows = await self._query(_COUNT)
        return int(rows[0][0])
