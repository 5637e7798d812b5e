"""The transactional outbox: the hand-offs a decision or a review implies, stored with it.

``outbox`` is append-only like the record (one row per hand-off, unique by idempotency key, so a
hand-off committed twice is stored once). Whether a row was delivered is the dispatcher's
business and lives in its own table, ``outbox_delivery``: no row there means pending; ``delivered``
and ``dead`` are settled; ``replay`` is a dead letter an operator sent back to pending.
Statements are written once with ``{p}`` placeholders and ``{json}`` casts (``database.py``);
``OutboxQueries`` runs them for the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.decide.record import HandOff
from service.audit.database import SqlStoreCore, stored_record
from service.audit.group_commit import Statement

SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    step TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_decision ON outbox (decision_id);
CREATE TABLE IF NOT EXISTS outbox_delivery (
    outbox_id INTEGER PRIMARY KEY REFERENCES outbox (id),
    state TEXT NOT NULL CHECK (state IN ('delivered', 'dead', 'replay')),
    attempts INTEGER NOT NULL,
    reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_delivery_state ON outbox_delivery (state);
CREATE TRIGGER IF NOT EXISTS outbox_no_update BEFORE UPDATE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox is append-only'); END;
CREATE TRIGGER IF NOT EXISTS outbox_no_delete BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox is append-only'); END;
"""

POSTGRES_DDL = [
    """CREATE TABLE IF NOT EXISTS outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
        step TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        message JSONB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_decision ON outbox (decision_id)",
    """CREATE TABLE IF NOT EXISTS outbox_delivery (
        outbox_id BIGINT PRIMARY KEY REFERENCES outbox (id),
        state TEXT NOT NULL CHECK (state IN ('delivered', 'dead', 'replay')),
        attempts INTEGER NOT NULL,
        reason TEXT,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_delivery_state ON outbox_delivery (state)",
]
POSTGRES_TRIGGERS = [
    ("outbox_append_only", "outbox", "BEFORE UPDATE OR DELETE", "ROW"),
    ("outbox_no_truncate", "outbox", "BEFORE TRUNCATE", "STATEMENT"),
]

INSERT = (
    "INSERT INTO outbox (idempotency_key, decision_id, step, routing_key, created_at, message) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}{json}) ON CONFLICT (idempotency_key) DO NOTHING"
)
SETTLE = (
    "INSERT INTO outbox_delivery (outbox_id, state, attempts, reason, updated_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (outbox_id) DO UPDATE SET "
    "state = excluded.state, attempts = excluded.attempts, reason = excluded.reason, "
    "updated_at = excluded.updated_at"
)
# Pending = no delivery state, or a dead letter sent back ('replay'). Written out twice rather
# than composed, so that every statement is one literal.
PENDING = (
    "SELECT o.id, o.message FROM outbox o WHERE o.id > {p} AND NOT EXISTS (SELECT 1 FROM "
    "outbox_delivery d WHERE d.outbox_id = o.id AND d.state <> 'replay') ORDER BY o.id LIMIT {p}"
)
DEPTH = (
    "SELECT COUNT(*), MIN(o.id) FROM outbox o WHERE o.id > {p} AND NOT EXISTS (SELECT 1 FROM "
    "outbox_delivery d WHERE d.outbox_id = o.id AND d.state <> 'replay')"
)
DEAD = (
    "SELECT o.id, o.idempotency_key, o.routing_key, d.attempts, d.reason, d.updated_at "
    "FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id WHERE d.state = 'dead' "
    "ORDER BY o.id LIMIT {p}"
)
DEAD_COUNT = "SELECT COUNT(*) FROM outbox_delivery WHERE state = 'dead'"
FOR_DECISION = (
    "SELECT o.idempotency_key, o.routing_key, o.created_at, d.state, d.attempts, d.reason "
    "FROM outbox o LEFT JOIN outbox_delivery d ON d.outbox_id = o.id "
    "WHERE o.decision_id = {p} ORDER BY o.id"
)


@dataclass(frozen=True)
class OutboxEntry:
    """A pending hand-off: its outbox row id and the message as committed."""

    id: int
    message: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        return str(self.message["idempotency_key"])

    @property
    def routing_key(self) -> str:
        return str(self.message["routing_key"])


@dataclass(frozen=True)
class Settlement:
    """What the dispatcher concluded about one outbox row."""

    outbox_id: int
    state: str  # 'delivered', 'dead' or 'replay'
    attempts: int
    reason: str | None
    at: str


@dataclass(frozen=True)
class DeadLetter:
    outbox_id: int
    idempotency_key: str
    routing_key: str
    attempts: int
    reason: str | None
    at: str


@dataclass(frozen=True)
class HandOffState:
    """A hand-off of one decision and how far its delivery got ('pending' until settled)."""

    idempotency_key: str
    routing_key: str
    created_at: str
    state: str
    attempts: int
    reason: str | None


def outbox_row(handoff: HandOff, created_at: str) -> tuple[Any, ...]:
    """A hand-off's outbox columns, in the order ``INSERT`` takes them; the message as JSON."""
    return (
        handoff.idempotency_key,
        handoff.decision_id,
        handoff.step,
        handoff.routing_key,
        created_at,
        handoff.__pydantic_serializer__.to_json(handoff).decode(),
    )


class OutboxQueries(SqlStoreCore):
    """The outbox in a SQL audit store: written with a decision or review, read by the
    dispatcher, settled through the same writer."""

    def _outbox(self, handoffs: Iterable[HandOff], at: str) -> list[Statement]:
        insert = self._sql(INSERT)
        return [(insert, outbox_row(h, at)) for h in handoffs]

    async def pending_handoffs(self, after_id: int, limit: int) -> list[OutboxEntry]:
        rows = await self._query(PENDING, after_id, limit)
        return [OutboxEntry(int(i), stored_record(message)) for i, message in rows]

    async def outbox_depth(self, after_id: int = 0) -> tuple[int, int | None]:
        """Pending hand-offs (beyond ``after_id``) and the oldest one's row id."""
        [(count, oldest)] = await self._query(DEPTH, after_id)
        return int(count), None if oldest is None else int(oldest)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if settlements:
            statement = self._sql(SETTLE)
            await self._writable().submit(
                *[
                    (statement, (s.outbox_id, s.state, s.attempts, s.reason, s.at))
                    for s in settlements
                ]
            )

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        return [DeadLetter(*row) for row in await self._query(DEAD, limit)]

    async def dead_letter_count(self) -> int:
        rows = await self._query(DEAD_COUNT)
        return int(rows[0][0])

    async def handoffs_for(self, decision_id: str) -> list[HandOffState]:
        return [
            HandOffState(key, routing, at, state or "pending", attempts or 0, reason)
            for key, routing, at, state, attempts, reason in await self._query(
                FOR_DECISION, decision_id
            )
        ]
