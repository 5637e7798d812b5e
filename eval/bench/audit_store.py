"""Audit store: durable appends per second, SQLite against PostgreSQL, through the real stores.

``count`` decision records (each the size of a real one) appended with ``concurrency`` appends
in flight, as a busy replica does; every append returns only once its record is durable
(SQLite: WAL with synchronous=FULL; PostgreSQL: synchronous_commit on). Reports appends/s,
append latency percentiles and the bytes of one record, which is what the capacity plan needs to
size the store for the peak. PostgreSQL is the server at ``SWITCHBOARD_BENCH_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``), in a schema of its own that is dropped after.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from engine import DecisionRequest
from engine.decide.record import DecisionRecord
from engine.policy.loader import load_policy
from eval.bench.engine_overhead import fake_engine
from eval.bench.report import emit, summary
from service.audit import AuditStore, SQLiteAuditStore

POSTGRES = os.environ.get("SWITCHBOARD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _records(n: int) -> list[DecisionRecord]:
    loaded = load_policy(Path("policies/contact-center"), Path("prompts"))
    engine = fake_engine(loaded, 0.9)
    template = await engine.decide(
        DecisionRequest(message="I need to open a ticket because my order never arrived.")
    )
    return [template.model_copy(update={"decision_id": uuid.uuid4().hex}) for _ in range(n)]


async def _append_all(
    store: AuditStore, records: list[DecisionRecord], concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    queue = list(reversed(records))

    async def worker() -> None:
        while queue:
            record = queue.pop()
            started = time.perf_counter()
            await store.append(record)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    assert await store.count() == len(records)
    await store.close()
    return {
        "appends_per_s": round(len(records) / elapsed),
        "append_ms": summary(latencies, 1000, 2),
    }


def _postgres(records: list[DecisionRecord], concurrency: int) -> dict[str, Any] | str:
    try:
        import psycopg
        from psycopg import sql

        from service.audit.postgres import PostgresAuditStore

        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except Exception as exc:
        return f"skipped: PostgreSQL at {POSTGRES} not reachable ({exc.__class__.__name__})"
    schema = f"switchboard_bench_{uuid.uuid4().hex[:10]}"
    try:
        return asyncio.run(
            _append_all(PostgresAuditStore(POSTGRES, schema=schema), records, concurrency)
        )
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def run(*, count: int = 5000, concurrency: int = 256) -> dict[str, Any]:
    records = asyncio.run(_records(count))
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = asyncio.run(
            _append_all(SQLiteAuditStore(Path(tmp) / "audit.db"), records, concurrency)
        )
    postgres = _postgres(records, concurrency)
    results: dict[str, Any] = {
        "records": count,
        "concurrency": concurrency,
        "record_bytes": len(records[0].model_dump_json()),
        "sqlite": sqlite,
        "postgres": postgres,
    }
    rows: list[list[Any]] = [["store", "appends/s", "p50 ms", "p99 ms"]]
    for name, r in (("sqlite", sqlite), ("postgres", postgres)):
        if isinstance(r, str):
            rows.append([name, r, "", ""])
        else:
            rows.append([name, r["appends_per_s"], r["append_ms"]["p50"], r["append_ms"]["p99"]])
    emit("audit_store", results, rows)
    return results
