"""Delivery to a real RabbitMQ: confirmed, durable, keyed; unroutable is a refusal; an unreachable
broker is ``BrokerUnavailableError``; the reference consumer validates and de-duplicates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from engine.errors import BrokerUnavailableError, HandOffRejectedError
from service.delivery.cli import HandOffReader
from service.delivery.rabbit import MESSAGE_TYPE, RabbitIntegrations
from tests.service.audit.test_outbox import with_handoff
from tests.service.conftest import free_port
from tests.service.delivery.rabbit import RABBIT_URL, Names, clean_up, drain, rabbit_or_skip

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    rabbit_or_skip()
    n = Names()
    yield n
    await clean_up(RABBIT_URL, n, ["dispatch.ticketing"])


def _message() -> dict[str, object]:
    return with_handoff(1).handoffs[0].model_dump(mode="json")


async def test_a_delivered_handoff_is_in_its_queue_with_its_key(names: Names) -> None:
    rabbit = RabbitIntegrations(
        RABBIT_URL, exchange=names.exchange, queue_prefix=names.queue_prefix
    )
    message = _message()
    try:
        await rabbit.deliver(message)
        await rabbit.deliver(message)  # at least once: a second delivery is a second message
    finally:
        await rabbit.close()
    got = await drain(RABBIT_URL, names.queue("dispatch.ticketing"), idle_s=0.2)
    assert [key for key, _ in got] == [message["idempotency_key"]] * 2
    assert json.loads(got[0][1]) == message

    printed: list[dict[str, object]] = []
    reader = HandOffReader(printed.append)
    assert [reader(body) for _, body in got] == [True, False]  # the duplicate is dropped
    assert (reader.received, reader.duplicates, printed) == (2, 1, [message])
    assert MESSAGE_TYPE == "switchboard.handoff/v1"


async def test_no_queue_bound_is_a_refusal_of_that_handoff(names: Names) -> None:
    rabbit = RabbitIntegrations(
        RABBIT_URL, exchange=names.exchange, queue_prefix=names.queue_prefix, declare_queues=False
    )
    try:
        with pytest.raises(HandOffRejectedError, match=r"dispatch\.ticketing"):
            await rabbit.deliver(_message())
        # The channel survives a returned message: a bound key is delivered afterwards.
    finally:
        await rabbit.close()


async def test_an_unreachable_broker_is_unavailable_not_a_refusal() -> None:
    rabbit = RabbitIntegrations(f"amqp://guest:guest@127.0.0.1:{free_port()}/", timeout_s=2)
    try:
        with pytest.raises(BrokerUnavailableError, match="cannot reach RabbitMQ"):
            await rabbit.deliver(_message())
    finally:
        await rabbit.close()
