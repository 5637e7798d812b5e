"""``switchboard consume``: decide messages from a RabbitMQ queue, acknowledged after the commit.

Each message (``service.intake.message``) is decided by the same engines and recorded in the same
audit store as ``/classify``, with its hand-offs in the outbox. Then the decision record is
published to the results exchange (routing key ``result.<category>``, ``message_id`` = decision
id, ``correlation_id`` = the caller's message id, publisher confirms), and only then is the
message acknowledged. A crash anywhere before the ack redelivers the message; its decision id is
derived from the caller's message id, so the redelivery finds the stored decision, records
nothing new and publishes that same decision again (header ``already_decided: true``).

A message that can never be decided (invalid JSON, no id, no text, unknown policy or channel,
oversize) goes to the dead-letter queue with ``x-reason`` and ``x-detail`` headers and is
acknowledged: it never loops. So is a decided message whose result no queue is bound for
(``unroutable_result``): its decision is recorded, and replaying it publishes that decision. If
the audit store is down the message is returned to the queue after a pause.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aio_pika
import aio_pika.abc

from service.intake.message import IntakeMessage, PoisonMessageError
from service.intake.runtime import IntakeRuntime

log = logging.getLogger("switchboard.intake")


@dataclass
class ConsumeCounts:
    decided: int = 0
    already: int = 0
    poison: dict[str, int] = field(default_factory=dict)
    retried: int = 0


@dataclass(frozen=True)
class ConsumeNames:
    queue: str = "switchboard.intake"
    results_exchange: str = "switchboard.results"
    dead_letter_queue: str = "switchboard.intake.dead"


class Consumer:
    def __init__(
        self,
        runtime: IntakeRuntime,
        url: str,
        names: ConsumeNames,
        *,
        max_bytes: int,
        max_chars: int,
        prefetch: int = 8,
    ) -> None:
        self.runtime = runtime
        self.url = url
        self.names = names
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.prefetch = prefetch
        self.counts = ConsumeCounts()

    async def run(self, *, max_messages: int | None = None, idle_s: float | None = None) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            # A result no queue is bound for is returned by the broker: raise, do not drop it.
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await channel.declare_queue(self.names.queue, durable=True)
            await channel.declare_queue(self.names.dead_letter_queue, durable=True)
            results = await channel.declare_exchange(
                self.names.results_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            handled = 0
            async with queue.iterator() as messages:
                while max_messages is None or handled < max_messages:
                    try:
                        message = await asyncio.wait_for(messages.__anext__(), idle_s)
                    except (asyncio.TimeoutError, StopAsyncIteration):
                        return
                    await self.handle(channel, results, message)
                    handled += 1

    async def handle(
        self,
        channel: aio_pika.abc.AbstractChannel,
        results: aio_pika.abc.AbstractExchange,
        message: aio_pika.abc.AbstractIncomingMessage,
    ) -> None:
        try:
            parsed = IntakeMessage.from_json(
                message.body, max_bytes=self.max_bytes, max_chars=self.max_chars
            )
            decided = await self.runtime.intake.decide(parsed)
        except PoisonMessageError as exc:
            await self._dead_letter(channel, message, exc.reason, exc.detail)
            return
        except Exception as exc:  # the store (or the model host) is down: try again later
            self.counts.retried += 1
            log.error(
                "intake failed",
                extra={"fields": {"event": "intake_failed", "error": type(exc).__name__}},
            )
            await asyncio.sleep(1)
            await message.reject(requeue=True)
            return
        try:
            await results.publish(
                aio_pika.Message(
                    decided.record,
                    content_type="application/json",
                    message_id=decided.decision_id,
                    correlation_id=parsed.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers={"already_decided": decided.already},
                ),
                routing_key=f"result.{decided.category}",
            )
        except aio_pika.exceptions.DeliveryError as exc:
            # No queue is bound for this category's results. The decision is recorded; the input
            # waits in the dead-letter queue, and replaying it once a queue is bound publishes
            # the stored decision. Requeueing instead would stall every message behind it.
            await self._dead_letter(
                channel, message, "unroutable_result", f"result.{decided.category}: {exc}"
            )
            return
        await message.ack()  # after the commit and the confirmed result
        if decided.already:
            self.counts.already += 1
        else:
            self.counts.decided += 1

    async def _dead_letter(
        self,
        channel: aio_pika.abc.AbstractChannel,
        message: aio_pika.abc.AbstractIncomingMessage,
        reason: str,
        detail: str,
    ) -> None:
        """The input to the dead-letter queue with why (confirmed), then acknowledged."""
        await channel.default_exchange.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                message_id=message.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"x-reason": reason, "x-detail": detail[:500]},
            ),
            routing_key=self.names.dead_letter_queue,
        )
        await message.ack()
        self.counts.poison[reason] = self.counts.poison.get(reason, 0) + 1
        log.warning(
            "poison message", extra={"fields": {"event": "intake_poison", "reason": reason}}
        )
