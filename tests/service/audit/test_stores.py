"""The audit store contract, the same cases against SQLite and against a real PostgreSQL server.

PostgreSQL cases (marked ``postgres``) use the server at ``SWITCHBOARD_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a schema of its own that is dropped
afterwards. Where no server answers they skip with the reason, except under ``CI=true``, where
they fail: CI must not pass without having run them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import AuditStoreError
from engine.categories import Category, Channel, VerdictStatus
from engine.decide.record import (
    DecisionRecord,
    LLMResult,
    ModelStamp,
    PathStep,
    PolicyStamp,
    Timings,
    TokenUsage,
    WorkflowTrace,
)
from service.audit import (
    AuditStore,
    LabelledReview,
    ReviewOutcome,
    SQLiteAuditStore,
    now_iso,
    open_store,
    sqlite_path,
    store_kind,
)

POSTGRES_URL = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_or_skip() -> None:
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc.__class__.__name__}: {exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must run the PostgreSQL store tests")
        pytest.skip(f"{message}; start it or set SWITCHBOARD_TEST_POSTGRES")


@dataclass
class Backend:
    """A store under test plus a way to reach the same database behind its back."""

    kind: str
    store: AuditStore
    location: str  # SQLite file path or PostgreSQL URL
    schema: str | None = None

    def raw(self, statement: str) -> list[tuple[Any, ...]]:
        """Run SQL on a fresh connection of its own, as another process would."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.location)
            try:
                return list(conn.execute(statement).fetchall())
            finally:
                conn.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.location, autocommit=True) as pg:
            pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(str(self.schema))))
            cur = pg.execute(statement)
            return list(cur.fetchall()) if cur.description else []

    def refusal(self) -> type[Exception]:
        if self.kind == "sqlite":
            return sqlite3.IntegrityError
        import psycopg

        return psycopg.errors.IntegrityConstraintViolation


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "audit.db"
        store = SQLiteAuditStore(path)
        yield Backend("sqlite", store, str(path))
        await store.close()
        return
    _postgres_or_skip()
    from service.audit.postgres import PostgresAuditStore

    schema = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    pg_store = PostgresAuditStore(POSTGRES_URL, schema=schema)
    try:
        yield Backend("postgres", pg_store, POSTGRES_URL, schema)
    finally:
        await pg_store.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
            pg.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def make_record(
    i: int, *, review: bool = False, text: str = "where is my order?", revision: str = "rev-a"
) -> DecisionRecord:
    category = Category.SERVICE_ACTION
    return DecisionRecord(
        decision_id=f"d-{i:05d}-{uuid.uuid4().hex[:8]}",
        created_at=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}+00:00",
        channel=Channel.CHAT,
        input_redacted=text,
        input_chars=len(text),
        redaction="none",
        policy=PolicyStamp(id="contact-center", version="1.0.0", revision=revision),
        prompt_template_hash="t",
        model=ModelStamp(backend="fake", name="fake-scripted", digest="none"),
        llm=LLMResult(
            status=VerdictStatus.OK,
            label=category,
            confidence=0.5 if review else 0.9,
            probabilities={category: 0.9},
            method="scripted",
        ),
        keywords_matched=[],
        rules_fired=[],
        category=category,
        confidence=0.9,
        requires_human_review=review,
        degraded=False,
        decision_path=[PathStep("model", "accepted", "0.90 >= 0.55")],
        workflow=WorkflowTrace(
            name=category,
            completed=["capture"],
            next_step="review" if review else "dispatch",
            status="awaiting_review" if review else "dispatched",
            queue="service_desk" if review else None,
        ),
        next_step="review" if review else "dispatch",
        timings=Timings(total_ms=1.0, redaction_ms=0.1, llm_ms=0.5, engine_ms=0.4),
        tokens=TokenUsage(prompt=10, cached=0, output=1),
        cost_usd=0.0,
    )


def review_of(record: DecisionRecord, category: str, note: str = "") -> ReviewOutcome:
    return ReviewOutcome(record.decision_id, category, note, "agent-1", now_iso())


async def test_append_then_get_returns_the_record(backend: Backend) -> None:
    record = make_record(1)
    await backend.store.append(record)
    assert await backend.store.get(record.decision_id) == record.model_dump(mode="json")
    assert await backend.store.get("no-such-id") is None
    assert await backend.store.count() == 1


async def test_reviews_are_kept_in_order_next_to_the_decision(backend: Backend) -> None:
    record = make_record(1, review=True)
    await backend.store.append(record)
    assert await backend.store.reviews_for(record.decision_id) == []
    first = review_of(record, "informational", "first look")
    second = review_of(record, "safety_compliance", "on second thoughts")
    await backend.store.add_review(first)
    await backend.store.add_review(second)
    assert await backend.store.reviews_for(record.decision_id) == [first, second]


async def test_a_review_needs_an_existing_decision(backend: Backend) -> None:
    ghost = make_record(9)
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await backend.store.add_review(review_of(ghost, "informational"))


async def test_pending_reviews_oldest_first_until_reviewed(backend: Backend) -> None:
    records = [make_record(i, review=i % 2 == 0) for i in range(6)]
    for record in records:
        await backend.store.append(record)
    pending = await backend.store.pending_reviews(10)
    assert [p.decision_id for p in pending] == [records[i].decision_id for i in (0, 2, 4)]
    assert pending[0].queue == "service_desk"
    assert pending[0].policy_revision == "rev-a"
    assert [p.decision_id for p in await backend.store.pending_reviews(2)] == [
        records[0].decision_id,
        records[2].decision_id,
    ]
    await backend.store.add_review(review_of(records[2], "informational"))
    pending = await backend.store.pending_reviews(10)
    assert [p.decision_id for p in pending] == [records[0].decision_id, records[4].decision_id]


async def test_labelled_export_uses_the_latest_review(backend: Backend) -> None:
    a = make_record(1, review=True, text="is <EMAIL_ADDRESS> on file?")
    b = make_record(2, review=True, text="my mother fainted")
    await backend.store.append(a)
    await backend.store.append(b)
    await backend.store.add_review(review_of(a, "service_action"))
    await backend.store.add_review(review_of(b, "informational"))
    latest = review_of(a, "informational")
    await backend.store.add_review(latest)
    labelled = await backend.store.labelled(10)
    assert [(r.decision_id, r.text, r.label) for r in labelled] == [
        (b.decision_id, "my mother fainted", "informational"),
        (a.decision_id, "is <EMAIL_ADDRESS> on file?", "informational"),
    ]
    # Where each label came from, and what the engine had decided (the review changed nothing).
    assert labelled[1] == LabelledReview(
        decision_id=a.decision_id,
        text="is <EMAIL_ADDRESS> on file?",
        label="informational",
        channel="chat",
        reviewer="agent-1",
        reviewed_at=latest.created_at,
        decided="service_action",
        policy_revision="rev-a",
    )
    assert len(await backend.store.labelled(1)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE decisions SET category = 'informational'",
        "DELETE FROM decisions",
        "UPDATE reviews SET category = 'service_action'",
        "DELETE FROM reviews",
    ],
)
async def test_the_database_refuses_updates_and_deletes(backend: Backend, statement: str) -> None:
    record = make_record(1, review=True)
    await backend.store.append(record)
    await backend.store.add_review(review_of(record, "informational"))
    with pytest.raises(backend.refusal(), match="append-only"):
        backend.raw(statement)
    assert backend.raw("SELECT category FROM decisions") == [("service_action",)]
    assert backend.raw("SELECT category FROM reviews") == [("informational",)]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_refuses_truncate(backend: Backend) -> None:
    await backend.store.append(make_record(1))
    for table in ("decisions", "reviews"):
        with pytest.raises(backend.refusal(), match="append-only"):
            backend.raw(f"TRUNCATE {table} CASCADE")
    assert backend.raw("SELECT COUNT(*) FROM decisions") == [(1,)]


async def test_a_duplicate_id_fails_alone(backend: Backend) -> None:
    """Group commit: one bad row in a batch fails its own append, not its neighbours'."""
    original = make_record(1)
    await backend.store.append(original)
    others = [make_record(i) for i in range(2, 12)]
    results = await asyncio.gather(
        backend.store.append(original),
        *(backend.store.append(r) for r in others),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception)
    assert results[1:] == [None] * len(others)
    assert await backend.store.count() == 1 + len(others)


async def test_200_concurrent_appends_all_land(backend: Backend) -> None:
    records = [make_record(i, review=i % 10 == 0) for i in range(200)]
    await asyncio.gather(*(backend.store.append(r) for r in records))
    assert await backend.store.count() == 200
    stored = {row[0] for row in backend.raw("SELECT decision_id FROM decisions")}
    assert stored == {r.decision_id for r in records}
    assert len(await backend.store.pending_reviews(1000)) == 20


async def test_an_appended_record_is_durable_and_visible_to_a_fresh_connection(
    backend: Backend,
) -> None:
    for i in range(20):
        record = make_record(i)
        await backend.store.append(record)
        # Straight after append returned, another connection (another process) sees it.
        rows = backend.raw("SELECT decision_id, policy_revision FROM decisions")
        assert (record.decision_id, "rev-a") in rows


async def test_a_reopened_store_sees_what_was_written(backend: Backend, tmp_path: Path) -> None:
    record = make_record(1)
    await backend.store.append(record)
    if backend.kind == "sqlite":
        again: AuditStore = SQLiteAuditStore(Path(backend.location))
    else:
        from service.audit.postgres import PostgresAuditStore

        again = PostgresAuditStore(backend.location, schema=backend.schema)  # schema exists
    try:
        assert await again.get(record.decision_id) == record.model_dump(mode="json")
    finally:
        await again.close()


# -- selection by URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("audit.db", "sqlite", "audit.db"),
        ("/var/lib/switchboard/audit.db", "sqlite", "/var/lib/switchboard/audit.db"),
        ("sqlite:///audit.db", "sqlite", "audit.db"),
        ("sqlite:////var/lib/audit.db", "sqlite", "/var/lib/audit.db"),
        ("postgresql://sb@db:5432/audit", "postgres", None),
        ("postgres://sb@db/audit", "postgres", None),
    ],
)
def test_store_kind_from_url(url: str, kind: str, path: str | None) -> None:
    assert store_kind(url) == kind
    if path is not None:
        assert sqlite_path(url) == Path(path)


def test_an_unknown_scheme_is_refused_with_the_choices() -> None:
    with pytest.raises(AuditStoreError, match=r"'mysql'.*postgresql://"):
        store_kind("mysql://root@127.0.0.1/test")


async def test_open_store_builds_sqlite_from_a_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        assert isinstance(store, SQLiteAuditStore)
        await store.append(make_record(1))
        assert (tmp_path / "a.db").exists()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_open_store_builds_postgres_from_a_url() -> None:
    """libpq's own ``options`` in the URL pick the schema, as a deployment might."""
    _postgres_or_skip()
    import psycopg
    from psycopg import sql

    from service.audit.postgres import PostgresAuditStore

    schema = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
        pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        store = open_store(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
        try:
            assert isinstance(store, PostgresAuditStore)
            await store.append(make_record(1))
            assert await store.count() == 1
        finally:
            await store.close()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as pg:
            tables = pg.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
            pg.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    # decisions, reviews, accesses, outbox, outbox_delivery, claims: all there
    assert tables == (6,)
