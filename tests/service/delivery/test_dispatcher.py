"""The dispatcher over a real SQLite outbox: delivered once confirmed, refused hand-offs retried
then dead-lettered with the reason, an unreachable broker leaves everything pending, replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from engine.errors import BrokerUnavailableError, HandOffRejectedError
from service.audit import SQLiteAuditStore
from service.delivery import DeliveryMetrics, DeliveryPolicy, Dispatcher, RecordingIntegrations
from tests.service.audit.test_outbox import with_handoff


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteAuditStore]:
    s = SQLiteAuditStore(tmp_path / "audit.db")
    yield s
    await s.close()


def _dispatcher(
    store: SQLiteAuditStore, sink: RecordingIntegrations, **policy: float
) -> Dispatcher:
    return Dispatcher(
        store,
        sink,
        DeliveryMetrics(CollectorRegistry()),
        policy=DeliveryPolicy(**policy),  # type: ignore[arg-type]
        sleep=_no_wait,
    )


async def _until(condition: Callable[[], bool]) -> None:
    """Let the running dispatcher work until ``condition`` holds (at most 2 s)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)


def _sample(dispatcher: Dispatcher, name: str, **labels: str) -> float:
    value = dispatcher.metrics.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def test_committed_handoffs_are_delivered_and_settled(store: SQLiteAuditStore) -> None:
    records = [with_handoff(i) for i in range(5)]
    for r in records:
        await store.append(r)
    sink = RecordingIntegrations()
    dispatcher = _dispatcher(store, sink)
    assert await dispatcher.deliver_pending() == 5
    assert [m["idempotency_key"] for m in sink.delivered] == [
        r.handoffs[0].idempotency_key for r in records
    ]
    assert await dispatcher.deliver_pending() == 0  # settled: nothing is delivered twice
    assert len(sink.delivered) == 5
    assert await dispatcher.measure() == (0, 0)
    assert _sample(dispatcher, "switchboard_broker_up") == 1


async def test_a_refused_handoff_is_retried_then_dead_lettered_then_replayed(
    store: SQLiteAuditStore,
) -> None:
    await store.append(with_handoff(1))
    sink = RecordingIntegrations()
    sink.fail_with = HandOffRejectedError("no queue bound to dispatch.ticketing")
    dispatcher = _dispatcher(store, sink, max_attempts=3)
    assert await dispatcher.deliver_pending() == 1
    assert sink.attempts == 3
    [dead] = await store.dead_letters(10)
    assert dead.attempts == 3
    assert dead.reason == "no queue bound to dispatch.ticketing"
    assert await dispatcher.measure() == (0, 1)
    assert _sample(dispatcher, "switchboard_outbox_dead") == 1

    sink.fail_with = None  # the cause is fixed (a queue is bound): replay
    assert await dispatcher.replay([]) == 1
    assert await dispatcher.deliver_pending() == 1
    assert [m["idempotency_key"] for m in sink.delivered] == [dead.idempotency_key]
    assert await dispatcher.measure() == (0, 0)


async def test_an_unreachable_broker_keeps_everything_pending(store: SQLiteAuditStore) -> None:
    for i in range(3):
        await store.append(with_handoff(i))
    sink = RecordingIntegrations()
    sink.fail_with = BrokerUnavailableError("connection refused")
    dispatcher = _dispatcher(store, sink)
    with pytest.raises(BrokerUnavailableError):
        await dispatcher.deliver_batch()
    assert await dispatcher.measure() == (3, 0)  # pending, not dead: the broker is at fault
    assert await store.dead_letters(10) == []

    async def broker_returns() -> None:
        while sink.attempts < 9:
            await asyncio.sleep(0)
        sink.fail_with = None

    returning = asyncio.create_task(broker_returns())
    assert await dispatcher.deliver_pending() == 3  # backs off until the broker is back
    await returning
    assert len(sink.delivered) == 3
    assert _sample(dispatcher, "switchboard_handoff_failures_total", kind="broker") >= 2
    assert await dispatcher.measure() == (0, 0)


async def test_the_running_dispatcher_delivers_what_is_committed_while_it_runs(
    store: SQLiteAuditStore,
) -> None:
    sink = RecordingIntegrations()
    dispatcher = _dispatcher(store, sink, poll_s=30)
    dispatcher.start()
    try:
        record = with_handoff(1)
        await store.append(record)
        dispatcher.nudge()
        await _until(lambda: bool(sink.delivered))
        assert [m["decision_id"] for m in sink.delivered] == [record.decision_id]
    finally:
        await dispatcher.stop()


async def test_a_refused_handoff_backs_off_doubling_up_to_the_cap(
    store: SQLiteAuditStore,
) -> None:
    await store.append(with_handoff(1))
    sink = RecordingIntegrations()
    sink.fail_with = HandOffRejectedError("refused")
    waits: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        waits.append(seconds)

    dispatcher = Dispatcher(
        store,
        sink,
        DeliveryMetrics(CollectorRegistry()),
        policy=DeliveryPolicy(max_attempts=5, retry_wait_s=0.5, retry_wait_max_s=3.0),
        sleep=recording_sleep,
    )
    assert await dispatcher.deliver_pending() == 1
    assert waits == [0.5, 1.0, 2.0, 3.0]  # between the five attempts; none after the last


async def test_a_cancelled_broker_call_does_not_end_the_running_dispatcher(
    store: SQLiteAuditStore,
) -> None:
    """aiormq fails every pending call with CancelledError when its heartbeat closes a broker
    that stopped answering. The delivery task must log it and go on, not end in silence."""
    sink = RecordingIntegrations()
    sink.fail_with = asyncio.CancelledError()
    dispatcher = _dispatcher(store, sink, poll_s=30)
    dispatcher.start()
    try:
        record = with_handoff(1)
        await store.append(record)
        dispatcher.nudge()
        await _until(lambda: bool(sink.attempts))
        assert sink.attempts >= 1
        sink.fail_with = None  # the connection is back
        dispatcher.nudge()
        await _until(lambda: bool(sink.delivered))
        assert [m["decision_id"] for m in sink.delivered] == [record.decision_id]
    finally:
        await dispatcher.stop()
