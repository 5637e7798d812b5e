"""``switchboard consume`` and ``switchboard batch``: intake beyond HTTP, same engines and store.

Both read the service's ``SWITCHBOARD_*`` settings (policies, backend, audit store, broker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.registry import BACKENDS

if TYPE_CHECKING:
    from service.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    from service.logs import configure_logging
    from service.settings import Settings

    overrides: dict[str, object] = {}
    if args.backend:
        overrides["backend"] = args.backend
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level)
    return settings


def _consume(args: argparse.Namespace) -> int:
    from service.intake.consume import ConsumeNames, Consumer
    from service.intake.runtime import intake_runtime

    settings = _settings(args)
    if settings.broker_url is None:
        print("switchboard consume needs SWITCHBOARD_BROKER_URL (amqp://...)", file=sys.stderr)
        return 2
    names = ConsumeNames(args.queue, args.results_exchange, args.dead_letter_queue)

    async def run() -> dict[str, object]:
        async with intake_runtime(settings, queue=args.prefetch, tenant=args.tenant) as runtime:
            assert settings.broker_url is not None
            consumer = Consumer(
                runtime,
                settings.broker_url.get_secret_value(),
                names,
                max_bytes=settings.max_body_bytes,
                max_chars=settings.max_message_chars,
                prefetch=args.prefetch,
            )
            await consumer.run(max_messages=args.max_messages, idle_s=args.idle_s)
            c = consumer.counts
            return {"decided": c.decided, "already_decided": c.already, "poison": c.poison}

    print(json.dumps(asyncio.run(run())), file=sys.stderr)
    return 0


def _batch(args: argparse.Namespace) -> int:
    from service.intake.batch import run_batch
    from service.intake.runtime import intake_runtime

    settings = _settings(args)
    export, out = Path(args.export), Path(args.out)
    if not export.is_file():
        print(f"no such export: {export}", file=sys.stderr)
        return 2

    async def run() -> dict[str, object]:
        async with intake_runtime(settings, queue=args.concurrency, tenant=args.tenant) as runtime:
            summary = await run_batch(
                runtime.intake,
                export,
                out,
                max_chars=settings.max_message_chars,
                concurrency=args.concurrency,
                progress=not args.no_progress,
            )
            return {"backend": runtime.backend, **summary.as_dict()}

    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


_TENANT_HELP = (
    "tenant of messages that name none (default: the only tenant declared, if there is one); "
    "each is decided and stored in its tenant's region, which this process must serve"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    consume = sub.add_parser("consume", help="decide messages from a RabbitMQ queue")
    consume.add_argument("--queue", default="switchboard.intake")
    consume.add_argument("--results-exchange", default="switchboard.results")
    consume.add_argument("--dead-letter-queue", default="switchboard.intake.dead")
    consume.add_argument("--prefetch", type=int, default=8)
    consume.add_argument("--max-messages", type=int, help="stop after this many messages")
    consume.add_argument("--idle-s", type=float, help="stop after this long without a message")
    consume.add_argument("--backend", choices=BACKENDS, help="default: $SWITCHBOARD_BACKEND")
    consume.add_argument("--tenant", help=_TENANT_HELP)
    consume.set_defaults(handler=_consume)

    batch = sub.add_parser("batch", help="decide an export (JSON lines or CSV), resumable")
    batch.add_argument("export", help="EXPORT.jsonl or EXPORT.csv")
    batch.add_argument("--out", required=True, help="decisions.jsonl (appended; resumes)")
    batch.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="decisions in flight (the model takes one at a time; a wait counts against the "
        "policy's model deadline, so keep this small with the embedded model)",
    )
    batch.add_argument("--no-progress", action="store_true")
    batch.add_argument("--backend", choices=BACKENDS, help="default: $SWITCHBOARD_BACKEND")
    batch.add_argument("--tenant", help=_TENANT_HELP)
    batch.set_defaults(handler=_batch)
