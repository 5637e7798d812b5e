"""``switchboard consume`` against a real RabbitMQ: decided once by the caller's message id (a
redelivery returns the stored decision), results published, poison messages in the dead-letter
queue with the reason, never looping."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aio_pika
import pytest

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from service.intake.consume import ConsumeNames, Consumer
from service.intake.runtime import IntakeRuntime, intake_runtime
from service.settings import Settings
from tests.service.delivery.rabbit import RABBIT_URL, Names, rabbit_or_skip

pytestmark = pytest.mark.rabbitmq


def _names() -> tuple[str, ConsumeNames]:
    """A prefix of this test's own, and the consumer's queue and exchange names under it."""
    base = Names().exchange
    return base, ConsumeNames(f"{base}.intake", f"{base}.results", f"{base}.intake.dead")


async def _declare(
    channel: aio_pika.abc.AbstractChannel, names: ConsumeNames
) -> tuple[aio_pika.abc.AbstractQueue, aio_pika.abc.AbstractQueue, aio_pika.abc.AbstractExchange]:
    """The intake queue, the dead-letter queue and the results exchange, as a deployment has."""
    intake = await channel.declare_queue(names.queue, durable=True)
    dead = await channel.declare_queue(names.dead_letter_queue, durable=True)
    results = await channel.declare_exchange(
        names.results_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    return intake, dead, results


def _runtime(policy_copy: Path, tmp_path: Path) -> AbstractAsyncContextManager[IntakeRuntime]:
    settings = Settings(
        policies=policy_copy.parent,
        audit_db=str(tmp_path / "audit.db"),
        backend="fake",
        warm_up=False,
    )
    backend = FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.9))
    return intake_runtime(settings, backend=backend)


async def test_consume_decides_once_and_dead_letters_poison(
    policy_copy: Path, tmp_path: Path
) -> None:
    rabbit_or_skip()
    base, names = _names()
    async with await aio_pika.connect(RABBIT_URL) as connection:
        channel = await connection.channel()
        intake, dead, results_x = await _declare(channel, names)
        results = await channel.declare_queue(f"{base}.results.all", durable=True)
        await results.bind(results_x, "result.#")
        good = json.dumps({"message_id": "call-1", "message": "where is my parcel?"}).encode()
        bodies = [
            good,
            b"{not json",
            json.dumps({"message_id": "call-2", "message": "hi", "policy": "nope"}).encode(),
            json.dumps({"message_id": "call-3", "message": "x" * 30_000}).encode(),
            # Parse errors beyond JSONDecodeError, each once requeued for ever: an integer over
            # Python's 4,300 digits, nesting deeper than the stack, a lone surrogate (no UTF-8
            # text holds it); and an id too long to return as the result's correlation id,
            # which crashed the consumer after the commit, on every redelivery.
            b'{"message_id": "call-4", "message": "hi", "n": 1' + b"1" * 5_000 + b"}",
            b'{"message_id": "call-5", "message": "hi", "n": '
            + b"[" * 20_000
            + b"]" * 20_000
            + b"}",
            json.dumps({"message_id": "call-6\ud800", "message": "hi"}).encode(),
            json.dumps({"message_id": "c" * 256, "message": "where is my parcel?"}).encode(),
            good,  # a redelivery of the same caller message
        ]
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=intake.name)
        try:
            async with _runtime(policy_copy, tmp_path) as runtime:
                consumer = Consumer(runtime, RABBIT_URL, names, max_bytes=65_536, max_chars=20_000)
                await consumer.run(max_messages=len(bodies), idle_s=5)
                assert await runtime.store.count() == 1
            assert (consumer.counts.decided, consumer.counts.already) == (1, 1)
            reasons = []
            while (m := await dead.get(fail=False, timeout=5)) is not None:
                reasons.append(str(m.headers["x-reason"]))
                await m.ack()
            assert sorted(reasons) == [
                *["invalid_json"] * 4,
                "invalid_message_id",
                "oversize",
                "unknown_policy",
            ]
            got = []
            while (m := await results.get(fail=False, timeout=5)) is not None:
                got.append((m.correlation_id, m.message_id, m.headers["already_decided"]))
                await m.ack()
            assert [g[0] for g in got] == ["call-1", "call-1"]
            assert got[0][1] == got[1][1]  # the same decision, twice published, once recorded
            assert [g[2] for g in got] == [False, True]
        finally:
            for q in (names.queue, names.dead_letter_queue, f"{base}.results.all"):
                await channel.queue_delete(q)
            await channel.exchange_delete(names.results_exchange)


async def test_a_result_no_queue_is_bound_for_is_dead_lettered_not_dropped(
    policy_copy: Path, tmp_path: Path
) -> None:
    """The broker returns a result whose ``result.<category>`` has no queue. The input used to
    be acknowledged all the same, and its caller never got a result: it now waits in the
    dead-letter queue (``unroutable_result``), its decision recorded."""
    rabbit_or_skip()
    base, names = _names()
    async with await aio_pika.connect(RABBIT_URL) as connection:
        channel = await connection.channel()
        intake, dead, results_x = await _declare(channel, names)
        only_info = await channel.declare_queue(f"{base}.results.info", durable=True)
        await only_info.bind(results_x, "result.informational")
        body = json.dumps({"message_id": "call-1", "message": "where is my parcel?"}).encode()
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=intake.name)
        try:
            async with _runtime(policy_copy, tmp_path) as runtime:
                consumer = Consumer(runtime, RABBIT_URL, names, max_bytes=65_536, max_chars=20_000)
                await consumer.run(max_messages=1, idle_s=5)
                assert await runtime.store.count() == 1
            assert consumer.counts.poison == {"unroutable_result": 1}
            m = await dead.get(fail=False, timeout=5)
            assert m is not None
            assert m.headers["x-reason"] == "unroutable_result"
            assert m.body == body
            await m.ack()
            assert await intake.get(fail=False, timeout=1) is None  # acknowledged, not looping
        finally:
            for q in (names.queue, names.dead_letter_queue, f"{base}.results.info"):
                await channel.queue_delete(q)
            await channel.exchange_delete(names.results_exchange)
