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
import psycopg_pool
from psycopg import sql
from psycopg_pool import ConnectionPool

from engine import AuditStoreError
from service.audit import claims, outbox, search, shadow
from service.audit.group_commit import GroupCommitWriter, Work
from service.audit.rows import SqlAuditStore

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
    # Tenant and region (issue 12); rows written before them belong to no tenant.
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS region TEXT NOT NULL DEFAULT ''",
    """CREATE TABLE IF NOT EXISTS accesses (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at TEXT NOT NULL,
        subject TEXT NOT NULL,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        decision_ids TEXT NOT NULL
    )""",
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
    ("accesses_append_only", "accesses", "BEFORE UPDATE OR DELETE", "ROW"),
    ("accesses_no_truncate", "accesses", "BEFORE TRUNCATE", "STATEMENT"),
]
_SCHEMA_LOCK = 0x5357_4243  # advisory lock key: replicas create the schema one at a time


class PostgresAuditStore(SqlAuditStore):
    """PostgreSQL with group commit from one writer thread; reads from a small pool.

    ``read_only`` neither creates the schema nor opens a writer (``switchboard diff``).
    """

    _placeholder = "%s"
    _dialect = "postgres"
    _json_cast = "::jsonb"
    _name = "the PostgreSQL audit store"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        batch: int = 256,
        read_pool_size: int = 4,
        connect_timeout_s: float = 10.0,
        read_only: bool = False,
    ) -> None:
        self.url = url
        self.schema = schema
        self._timeout = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._group: GroupCommitWriter | None = None
        if not read_only:
            self._conn = self._connect()
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
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except psycopg_pool.PoolTimeout as exc:
            raise AuditStoreError(f"the PostgreSQL audit store does not answer: {exc}") from exc
        if not read_only:
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
            for statement in [
                *_DDL,
                *search.INDEXES,
                *outbox.POSTGRES_DDL,
                *claims.POSTGRES_DDL,
                *shadow.POSTGRES_DDL,
            ]:
                conn.execute(statement)
            for name, table, when, level in [
                *_TRIGGERS,
                *outbox.POSTGRES_TRIGGERS,
                *shadow.POSTGRES_TRIGGERS,
            ]:
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
                for statements, _ in work:
                    for statement, params in statements:
                        cur.execute(statement, params)
        except psycopg.OperationalError as exc:
            self._fail(work, exc)  # the server is gone: the caller answers 503, not a lie
            return
        except psycopg.Error:
            # Retry unit by unit so a bad unit cannot take the others down with it.
            for statements, fut in work:
                try:
                    conn = self._writer()
                    with conn.transaction(), conn.cursor() as cur:
                        for statement, params in statements:
                            cur.execute(statement, params)
                except psycopg.Error as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
            return
        for _, fut in work:
            fut.set_result(None)

    def _fail(self, work: list[Work], exc: BaseException) -> None:
        for _, fut in work:
            fut.set_exception(exc)
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    # -- the AuditStore contract -------------------------------------------------------------

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._pool.connection() as conn:
                return list(conn.execute(statement, params).fetchall())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise AuditStoreError(f"cannot read the PostgreSQL audit store: {exc}") from exc

    async def close(self) -> None:
        if self._group is not None:
            await self._group.stop()
        await asyncio.to_thread(self._pool.close)
        if self._conn is not None:
            self._conn.close()
