"""The PostgreSQL audit store: the same ``AuditStore`` contract as SQLite, for several replicas.

Writes go through one writer thread per process that commits whatever is queued as one
transaction (group commit, pipelined), with ``synchronous_commit = on``: ``append`` returns only
once PostgreSQL has flushed the commit to its WAL. Reads use a small connection pool. The
database itself refuses UPDATE, DELETE and TRUNCATE of decisions and reviews (triggers that
raise), so append-only does not depend on this code being the only client.

Schema creation is idempotent and serialised with an advisory lock, so replicas starting at the
same time do not race. ``schema`` puts the tables in their own PostgreSQL schema (tests use a
unique one per test and drop it afterwards).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from engine.record import DecisionRecord
from service.audit_writer import GroupCommitWriter, Work
from service.store import PendingReview, ReviewOutcome, decision_row, review_row

_DDL = [
    """CREATE TABLE IF NOT EXISTS decisions (
        decision_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        policy_id TEXT NOT NULL,
        policy_revision TEXT NOT NULL,
        category TEXT NOT NULL,
        requires_human_review BOOLEAN NOT NULL,
        review_queue TEXT,
        degraded BOOLEAN NOT NULL,
        record JSONB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_review ON decisions (requires_human_review, created_at)",
    """CREATE TABLE IF NOT EXISTS reviews (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
        category TEXT NOT NULL,
        note TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS reviews_decision ON reviews (decision_id)",
    """CREATE OR REPLACE FUNCTION switchboard_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% are append-only', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$""",
]
_TRIGGERS = [
    ("decisions_append_only", "decisions", "BEFORE UPDATE OR DELETE", "ROW"),
    ("decisions_no_truncate", "decisions", "BEFORE TRUNCATE", "STATEMENT"),
    ("reviews_append_only", "reviews", "BEFORE UPDATE OR DELETE", "ROW"),
    ("reviews_no_truncate", "reviews", "BEFORE TRUNCATE", "STATEMENT"),
]
_SCHEMA_LOCK = 0x5357_4243  # advisory lock key: replicas create the schema one at a time

_INSERT_DECISION = (
    "INSERT INTO decisions (decision_id, created_at, policy_id, policy_revision, category, "
    "requires_human_review, review_queue, degraded, record) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
)
_INSERT_REVIEW = (
    "INSERT INTO reviews (decision_id, category, note, reviewer, created_at) "
    "VALUES (%s, %s, %s, %s, %s)"
)


class PostgresAuditStore:
    """PostgreSQL with group commit from one writer thread; reads from a small pool."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        batch: int = 256,
        read_pool_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.schema = schema
        self._timeout = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = self._connect()
        self._create_schema(self._conn)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=read_pool_size,
            kwargs={"autocommit": True, "connect_timeout": int(connect_timeout_s)},
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout_s,
            name="switchboard-audit-read",
            open=False,
        )
        self._pool.open(wait=True, timeout=connect_timeout_s)
        self._group = GroupCommitWriter(self._commit, batch=batch)

    # -- connections -------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        # Durable before returning, whatever the server's default is.
        conn.execute("SET synchronous_commit TO on")
        if self.schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=int(self._timeout))
        if self.schema:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
        self._configure(conn)
        return conn

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _DDL:
                conn.execute(statement)
            for name, table, when, level in _TRIGGERS:
                conn.execute(
                    sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(name), sql.Identifier(table)
                    )
                )
                conn.execute(
                    sql.SQL(
                        "CREATE TRIGGER {} " + when + " ON {} FOR EACH " + level + " "
                        "EXECUTE FUNCTION switchboard_append_only()"
                    ).format(sql.Identifier(name), sql.Identifier(table))
                )

    def _writer(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    # -- the writer thread -------------------------------------------------------------------

    def _commit(self, work: list[Work]) -> None:
        try:
            conn = self._writer()
            with conn.transaction(), conn.pipeline(), conn.cursor() as cur:
                for statement, params, _ in work:
                    cur.execute(statement, params)
        except psycopg.OperationalError as exc:
            self._fail(work, exc)  # the server is gone: the caller answers 503, not a lie
            return
        except psycopg.Error:
            # Retry one by one so a bad row cannot take the others down with it.
            for statement, params, fut in work:
                try:
                    self._writer().execute(statement, params)
                except psycopg.Error as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
            return
        for _, _, fut in work:
            fut.set_result(None)

    def _fail(self, work: list[Work], exc: BaseException) -> None:
        for _, _, fut in work:
            fut.set_exception(exc)
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    # -- the AuditStore contract -------------------------------------------------------------

    async def append(self, record: DecisionRecord) -> None:
        await self._group.submit(_INSERT_DECISION, decision_row(record))

    async def add_review(self, outcome: ReviewOutcome) -> None:
        await self._group.submit(_INSERT_REVIEW, review_row(outcome))

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return list(conn.execute(statement, params).fetchall())

    async def get(self, decision_id: str) -> dict[str, Any] | None:
        rows = await asyncio.to_thread(
            self._read, "SELECT record FROM decisions WHERE decision_id = %s", (decision_id,)
        )
        if not rows:
            return None
        record: dict[str, Any] = rows[0][0]
        return record

    async def reviews_for(self, decision_id: str) -> list[ReviewOutcome]:
        rows = await asyncio.to_thread(
            self._read,
            "SELECT decision_id, category, note, reviewer, created_at FROM reviews "
            "WHERE decision_id = %s ORDER BY id",
            (decision_id,),
        )
        return [ReviewOutcome(*row) for row in rows]

    async def pending_reviews(self, limit: int) -> list[PendingReview]:
        rows = await asyncio.to_thread(
            self._read,
            "SELECT d.decision_id, d.created_at, d.category, d.policy_revision, d.review_queue "
            "FROM decisions d WHERE d.requires_human_review AND NOT EXISTS "
            "(SELECT 1 FROM reviews r WHERE r.decision_id = d.decision_id) "
            "ORDER BY d.created_at LIMIT %s",
            (limit,),
        )
        return [PendingReview(*row) for row in rows]

    async def labelled(self, limit: int) -> list[tuple[str, str, str]]:
        rows = await asyncio.to_thread(
            self._read,
            "SELECT d.decision_id, d.record->>'input_redacted', r.category "
            "FROM reviews r JOIN decisions d USING (decision_id) "
            "WHERE r.id IN (SELECT MAX(id) FROM reviews GROUP BY decision_id) "
            "ORDER BY r.id LIMIT %s",
            (limit,),
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    async def count(self) -> int:
        rows = await asyncio.to_thread(self._read, "SELECT COUNT(*) FROM decisions")
        return int(rows[0][0])

    async def close(self) -> None:
        await self._group.stop()
        await asyncio.to_thread(self._pool.close)
        if self._conn is not None:
            self._conn.close()
