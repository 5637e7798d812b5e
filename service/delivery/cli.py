"""``switchboard handoffs``: the reference consumer (print hand-offs) and the message schema.

``switchboard handoffs print`` binds a queue to the hand-off exchange, validates each message
against the versioned JSON Schema, drops idempotency keys it has already seen, prints the message
and acknowledges it only after printing: what a ticketing or safety-database adapter does, with
``print`` replaced by the call to that system (``docs/delivery.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from engine.decide.record import handoff_schema

SCHEMA_FILE = Path("schemas") / "handoff.v1.schema.json"


def schema_text() -> str:
    return json.dumps(handoff_schema(), indent=2, sort_keys=True) + "\n"


class HandOffReader:
    """Validate, de-duplicate by idempotency key, hand to ``act``: one consumer's core.

    ``seen`` is in memory here; a real adapter keeps it in its own database, in the same
    transaction as the action (a unique key on the idempotency key does it).
    """

    def __init__(self, act: Callable[[dict[str, Any]], None]) -> None:
        self._act = act
        self._validator = jsonschema.Draft202012Validator(handoff_schema())
        self.seen: set[str] = set()
        self.received = 0
        self.duplicates = 0

    def __call__(self, body: bytes) -> bool:
        """Handle one message body; False when it was a duplicate (already acted on)."""
        self.received += 1
        message = json.loads(body)
        self._validator.validate(message)
        key = message["idempotency_key"]
        if key in self.seen:
            self.duplicates += 1
            return False
        self._act(message)
        self.seen.add(key)
        return True


async def consume(
    url: str,
    *,
    exchange: str,
    binding: str,
    queue: str | None,
    reader: HandOffReader,
    count: int | None = None,
    idle_s: float | None = None,
) -> None:
    """Consume until ``count`` new hand-offs were handled or nothing came for ``idle_s``."""
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await (
            channel.declare_queue(queue, durable=True)
            if queue
            else channel.declare_queue(exclusive=True)
        )
        await q.bind(ex, binding)
        handled = 0
        async with q.iterator() as messages:
            while count is None or handled < count:
                try:
                    message = await asyncio.wait_for(messages.__anext__(), idle_s)
                except (asyncio.TimeoutError, StopAsyncIteration):
                    return
                try:
                    handled += reader(message.body)
                except (ValueError, jsonschema.ValidationError) as exc:
                    print(f"rejected: {exc}", file=sys.stderr)
                    await message.reject(requeue=False)  # never loop on a message we cannot read
                    continue
                await message.ack()  # only after acting on it


def _print(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("SWITCHBOARD_BROKER_URL")
    if not url:
        print("no broker: pass --url or set SWITCHBOARD_BROKER_URL", file=sys.stderr)
        return 2
    reader = HandOffReader(lambda m: print(json.dumps(m, indent=2, ensure_ascii=False), flush=True))
    asyncio.run(
        consume(
            url,
            exchange=args.exchange,
            binding=args.binding,
            queue=args.queue,
            reader=reader,
            count=args.count,
            idle_s=args.idle_s,
        )
    )
    print(
        f"received {reader.received}, acted on {len(reader.seen)}, duplicates {reader.duplicates}",
        file=sys.stderr,
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.write:
        target = Path(args.write) if args.write != "-" else SCHEMA_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {target}")
    else:
        sys.stdout.write(schema_text())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    handoffs = sub.add_parser("handoffs", help="print hand-offs from RabbitMQ; their schema")
    verbs = handoffs.add_subparsers(dest="verb", required=True)
    printer = verbs.add_parser("print", help="the reference consumer: print each hand-off")
    printer.add_argument("--url", help="amqp://... (default: $SWITCHBOARD_BROKER_URL)")
    printer.add_argument(
        "--exchange", default=os.environ.get("SWITCHBOARD_BROKER_EXCHANGE", "switchboard.handoffs")
    )
    printer.add_argument("--binding", default="#", help="routing-key pattern, e.g. dispatch.*")
    printer.add_argument("--queue", help="durable queue to use (default: a temporary one)")
    printer.add_argument("--count", type=int, help="stop after this many hand-offs")
    printer.add_argument("--idle-s", type=float, help="stop after this long without a message")
    printer.set_defaults(handler=_print)
    schema = verbs.add_parser("schema", help="print the hand-off message JSON Schema")
    schema.add_argument(
        "--write", nargs="?", const="-", help=f"write it (default path: {SCHEMA_FILE})"
    )
    schema.set_defaults(handler=_schema)
