"""What both databases share: the row encoding, the statements, and the store around them.

Statements are written once with ``{p}`` for the driver's placeholder (``?`` for SQLite, ``%s``
for psycopg). A database module supplies ``_placeholder``, ``_read`` and a group-commit writer
(``_group``) and inherits every method of the ``AuditStore`` contract but ``close``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

from engine import AuditStoreError, DecisionRecord
from engine.decide.record import HandOff, encode_record
from service.audit import outbox
from service.audit.group_commit import GroupCommitWriter, Statement
from service.audit.outbox import DeadLetter, HandOffState, OutboxEntry, Settlement
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

    def _sql(self, statement: str) -> str:
        return statement.format(p=self._placeholder, json=self._json_cast)

    def _outbox(self, handoffs: Iterable[HandOff], at: str) -> list[Statement]:
        insert = self._sql(outbox.INSERT)
        return [(insert, outbox.outbox_row(h, at)) for h in handoffs]

    async def append(self, record: DecisionRecord, encoded: bytes | None = None) -> None:
        # The record and the hand-offs it implies: one transaction (the transactional outbox).
        await self._writable().submit(
            (self._sql(_INSERT_DECISION), decision_row(record, encoded)),
            *self._outbox(record.handoffs, record.created_at),
        )

    async def add_review(self, outcome: ReviewOutcome, handoffs: Sequence[HandOff] = ()) -> None:
        await self._writable().submit(
            (self._sql(_INSERT_REVIEW), review_row(outcome)),
            *self._outbox(handoffs, outcome.created_at),
        )

    # -- the outbox: read by the dispatcher, settled through the same writer ------------------

    async def pending_handoffs(self, after_id: int, limit: int) -> list[OutboxEntry]:
        rows = await self._query(outbox.PENDING, after_id, limit)
        return [OutboxEntry(int(i), _record(message)) for i, message in rows]

    async def outbox_depth(self, after_id: int = 0) -> tuple[int, int | None]:
        """Pending hand-offs (beyond ``after_id``) and the oldest one's row id."""
        [(count, oldest)] = await self._query(outbox.DEPTH, after_id)
        return int(count), None if oldest is None else int(oldest)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if settlements:
            statement = self._sql(outbox.SETTLE)
            await self._writable().submit(
                *[
                    (statement, (s.outbox_id, s.state, s.attempts, s.reason, s.at))
                    for s in settlements
                ]
            )

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        return [DeadLetter(*row) for row in await self._query(outbox.DEAD, limit)]

    async def dead_letter_count(self) -> int:
        rows = await self._query(outbox.DEAD_COUNT)
        return int(rows[0][0])

    async def handoffs_for(self, decision_id: str) -> list[HandOffState]:
        return [
            HandOffState(key, routing, at, state or "pending", attempts or 0, reason)
            for key, routing, at, state, attempts, reason in await self._query(
                outbox.FOR_DECISION, decision_id
            )
        ]

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
            await self._writable().submit(("SELECT 1", ()))
        except AuditStoreError:
            raise
        except Exception as exc:
            raise AuditStoreError(f"{self._name} cannot commit: {type(exc).__name__}") from exc

    async def count(self) -> int:
        rows = await self._query(_COUNT)
        return int(rows[0][0])
