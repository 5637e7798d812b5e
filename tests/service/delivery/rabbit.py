"""The real RabbitMQ the delivery tests use, and names of their own on it.

The server is ``SWITCHBOARD_TEST_RABBITMQ`` (default ``amqp://guest:guest@127.0.0.1:5672/``).
Every test uses an exchange and queues named ``switchboard_test_<random>``, deleted afterwards,
so tests running at the same time (or other people's queues on the same server) never meet.
Where no server answers the tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

RABBIT_URL = os.environ.get("SWITCHBOARD_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")


def rabbit_or_skip() -> None:
    parsed = urlsplit(RABBIT_URL)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 3).close()
    except OSError as exc:
        message = f"RabbitMQ at {RABBIT_URL} is not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must run the RabbitMQ delivery tests")
        pytest.skip(
            f"{message}; start it (rabbitmq-server -detached) or set SWITCHBOARD_TEST_RABBITMQ"
        )


@dataclass
class Names:
    """An exchange and a queue prefix of one test's own."""

    exchange: str = field(default_factory=lambda: f"switchboard_test_{uuid.uuid4().hex[:12]}")
    queue_prefix: str = ""

    def __post_init__(self) -> None:
        self.queue_prefix = self.queue_prefix or self.exchange

    def queue(self, routing_key: str) -> str:
        return f"{self.queue_prefix}.{routing_key}"


async def drain(url: str, queue: str, *, idle_s: float = 1.0) -> list[tuple[str | None, bytes]]:
    """Every message waiting in ``queue`` (message_id, body), acknowledged."""
    import aio_pika

    out: list[tuple[str | None, bytes]] = []
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, durable=True)
        while True:
            message = await q.get(fail=False, timeout=5)
            if message is None:
                await asyncio.sleep(idle_s)
                message = await q.get(fail=False, timeout=5)
                if message is None:
                    return out
            out.append((message.message_id, message.body))
            await message.ack()


async def clean_up(url: str, names: Names, routing_keys: Iterable[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for key in routing_keys:
            await channel.queue_delete(names.queue(key))
        await channel.exchange_delete(names.exchange)
