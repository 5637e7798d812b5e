"""The transactional outbox: a record and its hand-offs commit together or not at all, the outbox
is append-only, delivery state lives beside it. SQLite and a real PostgreSQL, as the store tests
(the ``backend`` fixture comes from ``conftest.py``)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from engine.categories import Category
from engine.decide.record import DecisionRecord, HandOff, handoff
from service.audit import now_iso
from service.audit.outbox import Settlement
from tests.service.audit.test_stores import Backend, make_record, review_of


def _handoff(
    record: DecisionRecord, step: str = "create_ticket", cause: str = "decision"
) -> HandOff:
    return handoff(
        decision_id=record.decision_id,
        cause="review" if cause == "review" else "decision",
        kind="dispatch",
        step=step,
        target="ticketing",
        category=Category.SERVICE_ACTION,
        policy_revision="rev-a",
        payload={"decision_id": record.decision_id, "case_id": f"case-{record.decision_id}"},
    )


def _integrity(backend: Backend) -> type[Exception]:
    if backend.kind == "sqlite":
        return sqlite3.IntegrityError
    import psycopg

    return psycopg.IntegrityError


def with_handoff(i: int) -> DecisionRecord:
    record = make_record(i)
    return record.model_copy(update={"handoffs": [_handoff(record)]})


async def test_a_record_and_its_handoffs_commit_together(backend: Backend) -> None:
    record = with_handoff(1)
    await backend.store.append(record)
    [entry] = await backend.store.pending_handoffs(0, 10)
    assert entry.message == record.handoffs[0].model_dump(mode="json")
    assert entry.idempotency_key == f"{record.decision_id}:create_ticket"
    assert await backend.store.outbox_depth() == (1, entry.id)


async def test_a_failed_commit_leaves_no_handoff_behind(backend: Backend) -> None:
    first = with_handoff(1)
    await backend.store.append(first)
    # Same decision id, a different hand-off: the decision insert fails, so must the outbox row.
    clash = first.model_copy(update={"handoffs": [_handoff(first, step="other_step")]})
    with pytest.raises(_integrity(backend)):
        await backend.store.append(clash)
    rows = backend.raw("SELECT idempotency_key FROM outbox")
    assert rows == [(f"{first.decision_id}:create_ticket",)]


async def test_the_failed_unit_does_not_take_its_batch_down(backend: Backend) -> None:
    first = with_handoff(0)
    await backend.store.append(first)
    good = [with_handoff(i) for i in range(1, 30)]
    clash = first.model_copy(update={"handoffs": [_handoff(first, step="other_step")]})
    results = await asyncio.gather(
        *(backend.store.append(r) for r in [*good, clash]), return_exceptions=True
    )
    assert [isinstance(r, Exception) for r in results] == [False] * len(good) + [True]
    assert len(await backend.store.pending_handoffs(0, 100)) == len(good) + 1


@pytest.mark.parametrize(
    "statement", ["UPDATE outbox SET step = 'x'", "DELETE FROM outbox"], ids=["update", "delete"]
)
async def test_the_outbox_is_append_only(backend: Backend, statement: str) -> None:
    await backend.store.append(with_handoff(1))
    with pytest.raises(backend.refusal()):
        backend.raw(statement)


async def test_settled_handoffs_are_no_longer_pending(backend: Backend) -> None:
    records = [with_handoff(i) for i in range(3)]
    for r in records:
        await backend.store.append(r)
    entries = await backend.store.pending_handoffs(0, 10)
    await backend.store.settle(
        [
            Settlement(entries[0].id, "delivered", 1, None, now_iso()),
            Settlement(entries[1].id, "dead", 5, "no queue bound", now_iso()),
        ]
    )
    assert [e.id for e in await backend.store.pending_handoffs(0, 10)] == [entries[2].id]
    assert await backend.store.outbox_depth() == (1, entries[2].id)
    [dead] = await backend.store.dead_letters(10)
    assert (dead.outbox_id, dead.attempts, dead.reason) == (entries[1].id, 5, "no queue bound")
    states = await backend.store.handoffs_for(records[1].decision_id)
    assert [(s.state, s.reason) for s in states] == [("dead", "no queue bound")]
    # Replay: the dead letter is pending again; the outbox row itself never changed.
    await backend.store.settle([Settlement(entries[1].id, "replay", 0, None, now_iso())])
    assert [e.id for e in await backend.store.pending_handoffs(0, 10)] == [
        entries[1].id,
        entries[2].id,
    ]
    assert await backend.store.dead_letter_count() == 0


async def test_a_review_commits_with_its_handoffs_once(backend: Backend) -> None:
    record = make_record(1, review=True)
    await backend.store.append(record)
    follow = _handoff(record, step="report_to_safety_db", cause="review")
    await backend.store.add_review(review_of(record, "service_action"), [follow])
    await backend.store.add_review(review_of(record, "service_action", "again"), [follow])
    assert len(await backend.store.reviews_for(record.decision_id)) == 2
    keys = [e.idempotency_key for e in await backend.store.pending_handoffs(0, 10)]
    assert keys == [f"{record.decision_id}:report_to_safety_db"]


async def test_a_write_the_driver_cannot_bind_fails_alone_and_the_store_goes_on(
    backend: Backend,
) -> None:
    """Not every bad value is a database error: SQLite's driver raises OverflowError for an
    integer over 64 bits. That write fails; its neighbours and every later write commit (the
    writer thread neither ends nor keeps the failed transaction open)."""
    first = with_handoff(1)
    await backend.store.append(first)
    [entry] = await backend.store.pending_handoffs(0, 10)
    bad = Settlement(entry.id, "dead", 2**70, "too many attempts", now_iso())
    neighbours = [make_record(i) for i in range(2, 6)]
    results = await asyncio.wait_for(
        asyncio.gather(
            backend.store.settle([bad]),
            *(backend.store.append(r) for r in neighbours),
            return_exceptions=True,
        ),
        10,
    )
    assert isinstance(results[0], Exception)
    assert results[1:] == [None] * len(neighbours)
    after = make_record(99)
    await asyncio.wait_for(backend.store.append(after), 10)
    assert await backend.store.count() == 2 + len(neighbours)
    # the failed settlement left no trace: the hand-off is still pending
    assert [e.id for e in await backend.store.pending_handoffs(0, 10)] == [entry.id]
