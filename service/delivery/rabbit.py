"""RabbitMQ delivery: one durable topic exchange, persistent messages, publisher confirms.

Each hand-off is published to the exchange (``SWITCHBOARD_BROKER_EXCHANGE``, default
``switchboard.handoffs``) with its routing key (``review.<queue>``, ``dispatch.<integration>``),
``mandatory`` set and the idempotency key as the AMQP ``message_id``. ``deliver`` returns only on
the broker's confirm: the message is then on disk in every queue bound to that key. A returned
(unroutable) or negatively confirmed message is ``HandOffRejectedError``; a connection that is
gone, refused or too slow is ``BrokerUnavailableError`` and the connection is rebuilt on the next
call.

Each downstream system is a queue binding. With ``declare_queues`` on (the default) a durable
queue ``<prefix>.<routing key>`` is declared and bound the first time a routing key is used, so a
hand-off never finds no queue; operators who bind their own queues turn it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
from pamqp.commands import Basic

from engine.errors import BrokerUnavailableError, HandOffRejectedError

CONTENT_TYPE = "application/json"
MESSAGE_TYPE = "switchboard.handoff/v1"


class RabbitIntegrations:
    """Publishes hand-offs to a RabbitMQ topic exchange and waits for each confirm."""

    name = "rabbitmq"

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "switchboard.handoffs",
        queue_prefix: str = "switchboard",
        declare_queues: bool = True,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self._exchange_name = exchange
        self._prefix = queue_prefix
        self._declare = declare_queues
        self._timeout = timeout_s
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._bound: set[str] = set()
        self._lock = asyncio.Lock()

    async def _ready(self) -> aio_pika.abc.AbstractExchange:
        async with self._lock:
            if (
                self._exchange is not None
                and self._channel is not None
                and not self._channel.is_closed
            ):
                return self._exchange
            await self._drop()
            try:
                self._connection = await aio_pika.connect(self._url, timeout=self._timeout)
                self._channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                self._exchange = await self._channel.declare_exchange(
                    self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
            except (aio_pika.exceptions.AMQPError, OSError, asyncio.TimeoutError) as exc:
                await self._drop()
                raise BrokerUnavailableError(f"cannot reach RabbitMQ: {_describe(exc)}") from exc
            self._bound.clear()
            return self._exchange

    async def _bind(self, routing_key: str) -> None:
        if not self._declare or routing_key in self._bound:
            return
        assert self._channel is not None
        assert self._exchange is not None
        queue = await self._channel.declare_queue(f"{self._prefix}.{routing_key}", durable=True)
        await queue.bind(self._exchange, routing_key)
        self._bound.add(routing_key)

    async def deliver(self, message: Mapping[str, Any]) -> None:
        exchange = await self._ready()
        routing_key = str(message["routing_key"])
        body = aio_pika.Message(
            json.dumps(message, separators=(",", ":")).encode(),
            content_type=CONTENT_TYPE,
            type=MESSAGE_TYPE,
            message_id=str(message["idempotency_key"]),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"schema_version": int(message.get("schema_version", 1))},
        )
        try:
            await self._bind(routing_key)
            confirm = await exchange.publish(
                body, routing_key=routing_key, mandatory=True, timeout=self._timeout
            )
        except aio_pika.exceptions.DeliveryError as exc:
            raise HandOffRejectedError(
                f"RabbitMQ returned or refused {routing_key!r}: {_describe(exc)} "
                "(no queue bound to this routing key?)"
            ) from exc
        except (aio_pika.exceptions.AMQPError, OSError, asyncio.TimeoutError) as exc:
            await self._drop()
            raise BrokerUnavailableError(f"RabbitMQ publish failed: {_describe(exc)}") from exc
        if not isinstance(confirm, Basic.Ack):
            raise HandOffRejectedError(f"RabbitMQ did not confirm {routing_key!r}: {confirm!r}")

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(  # it is being thrown away either way
                aio_pika.exceptions.AMQPError, OSError, asyncio.TimeoutError, RuntimeError
            ):
                await asyncio.wait_for(connection.close(), self._timeout)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
