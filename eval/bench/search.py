"""Decision search (the explorer, ``GET /decisions``): how long a page takes on a large store,
SQLite against PostgreSQL, through the real stores' ``search``.

``count`` decisions of real size (90% tenant acme, 10% another tenant; a fifth need review, a
tenth of those reviewed; 2% degraded; 5% with a fired rule) are written straight into a fresh
store, then each query is timed (median of ``repeat`` runs): the first page (50 rows) under
each filter, a page deep in the result by its keyset cursor against the same page by OFFSET,
the capped count, and a full 50,000-row export's worth of pages. PostgreSQL is the server at
``SWITCHBOARD_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``), in a
schema of its own that is dropped after.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine import DecisionRequest
from engine.categories import Category
from engine.decide.record import DecisionRecord, FiredRule, WorkflowTrace, encode_record
from engine.policy.loader import load_policy
from eval.bench.engine_overhead import fake_engine
from eval.bench.report import emit
from service.audit import Cursor, DecisionFilter, ReviewState, SQLiteAuditStore
from service.audit.rows import decision_row
from service.audit.search import search_statement
from service.audit.store import AuditStore
from service.routes.search import csv_row

POSTGRES = os.environ.get("SWITCHBOARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
PAGE = 50
FILTERS = {
    "none": DecisionFilter(),
    "category=safety": DecisionFilter(category=Category.SAFETY_COMPLIANCE),
    "review=pending": DecisionFilter(review=ReviewState.PENDING),
    "rule fired": DecisionFilter(rule="safety-severe-event"),
    "degraded": DecisionFilter(degraded=True),
    "one hour": DecisionFilter(
        since=START + timedelta(days=5), until=START + timedelta(days=5, hours=1)
    ),
}
_INSERT = (
    "INSERT INTO decisions (decision_id, created_at, policy_id, policy_revision, category, "
    "requires_human_review, review_queue, degraded, record, tenant, region) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}{json}, {p}, {p})"
)
_REVIEW = (
    "INSERT INTO reviews (decision_id, category, note, reviewer, created_at) "
    "VALUES ({p}, {p}, '', 'bench', {p})"
)


async def _template() -> DecisionRecord:
    loaded = load_policy(Path("policies/contact-center"), Path("prompts"))
    engine = fake_engine(loaded, 0.9)
    return await engine.decide(
        DecisionRequest(message="I need to open a ticket because my order never arrived.")
    )


def _rows(template: DecisionRecord, count: int) -> Iterator[tuple[tuple[Any, ...], bool]]:
    """(decision row, reviewed) for ``count`` decisions, one every 20 s from ``START``."""
    categories = list(Category)
    for i in range(count):
        category = categories[i % 3]
        review = i % 5 == 0
        record = template.model_copy(
            update={
                "decision_id": uuid.uuid4().hex,
                "created_at": (START + timedelta(seconds=20 * i)).isoformat(),
                "category": category,
                "requires_human_review": review,
                "degraded": i % 50 == 7,
                "rules_fired": [FiredRule(id="safety-severe-event", reason="bench")]
                if i % 20 == 3
                else [],
                "workflow": WorkflowTrace(
                    name=category,
                    completed=["capture"],
                    next_step="review" if review else None,
                    status="awaiting_review" if review else "completed",
                    queue="service_desk" if review else None,
                ),
            }
        )
        tenant = "other" if i % 10 == 9 else "acme"
        yield (
            decision_row(record, encode_record(record), tenant=tenant, region="eu"),
            (review and i % 50 == 0),
        )


def _fill_sqlite(path: Path, template: DecisionRecord, count: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        rows = list(_rows(template, count))
        with conn:
            conn.executemany(_INSERT.format(p="?", json=""), [r for r, _ in rows])
            conn.executemany(
                _REVIEW.format(p="?"),
                [(r[0], "informational", r[1]) for r, reviewed in rows if reviewed],
            )
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _fill_postgres(schema: str, template: DecisionRecord, count: int) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        rows = list(_rows(template, count))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_INSERT.format(p="%s", json="::jsonb"), [r for r, _ in rows])
            cur.executemany(
                _REVIEW.format(p="%s"),
                [(r[0], "informational", r[1]) for r, reviewed in rows if reviewed],
            )
        conn.execute("ANALYZE")


async def _median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


async def _measure(store: AuditStore, dialect: str, count: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, flt in FILTERS.items():
        out[f"first page, {name}"] = await _median_ms(
            functools.partial(store.search, flt, PAGE, tenant="acme"), repeat
        )
    # A page 80% of the way down the unfiltered result: by its keyset, and by OFFSET.
    depth = int(count * 0.9 * 0.8)
    statement, args = search_statement(
        DecisionFilter(), dialect=dialect, tenant="acme", queues=None, after=None, limit=1
    )
    read = store._read  # type: ignore[attr-defined]  # the bench reads beside the contract
    placeholder = "?" if dialect == "sqlite" else "%s"
    [row] = read(statement.format(p=placeholder) + f" OFFSET {depth - 1}", args)
    after = Cursor(row[1], row[0])
    out["deep page, keyset"] = await _median_ms(
        lambda: store.search(DecisionFilter(), PAGE, after=after, tenant="acme"), repeat
    )
    statement, args = search_statement(
        DecisionFilter(), dialect=dialect, tenant="acme", queues=None, after=None, limit=PAGE
    )
    offset = statement.format(p=placeholder) + f" OFFSET {depth}"
    out["deep page, OFFSET"] = await _median_ms(
        lambda: asyncio.to_thread(read, offset, args), repeat
    )
    out["count (cap 10,001)"] = await _median_ms(
        lambda: store.count_matching(DecisionFilter(), 10_001, tenant="acme"), repeat
    )

    async def export() -> None:
        after: Cursor | None = None
        sent = 0
        while sent < 50_000:
            page = await store.search(DecisionFilter(), 500, after=after, tenant="acme")
            for item in page.items:
                csv_row(item)
            sent += len(page.items)
            if page.next is None:
                return
            after = page.next

    out["export 50,000 rows"] = await _median_ms(export, 1)
    await store.close()
    return out


def _postgres(template: DecisionRecord, count: int, repeat: int) -> dict[str, Any] | str:
    try:
        import psycopg
        from psycopg import sql

        from service.audit.postgres import PostgresAuditStore

        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except Exception as exc:
        return f"skipped: PostgreSQL at {POSTGRES} not reachable ({exc.__class__.__name__})"
    schema = f"switchboard_bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(PostgresAuditStore(POSTGRES, schema=schema).close())  # the schema
        _fill_postgres(schema, template, count)
        store = PostgresAuditStore(POSTGRES, schema=schema, read_only=True)
        return asyncio.run(_measure(store, "postgres", count, repeat))
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run(*, count: int = 100_000, repeat: int = 5) -> dict[str, Any]:
    template = asyncio.run(_template())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.db"
        asyncio.run(SQLiteAuditStore(path).close())  # the schema and its indexes
        _fill_sqlite(path, template, count)
        sqlite = asyncio.run(
            _measure(SQLiteAuditStore(path, read_only=True), "sqlite", count, repeat)
        )
    postgres = _postgres(template, count, repeat)
    results: dict[str, Any] = {
        "decisions": count,
        "page_rows": PAGE,
        "sqlite_ms": sqlite,
        "postgres_ms": postgres,
    }
    rows: list[list[Any]] = [["query (median ms)", "sqlite", "postgres"]]
    for name, ms in sqlite.items():
        rows.append([name, ms, postgres if isinstance(postgres, str) else postgres[name]])
    emit("search", results, rows)
    return results
