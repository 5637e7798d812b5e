"""``python -m eval.bench outage``: stop the broker while traffic flows; the outbox absorbs it.

Runs ``switchboard serve`` (fake backend) delivering hand-offs to the RabbitMQ at
``SWITCHBOARD_BENCH_RABBITMQ`` (default ``amqp://guest:guest@127.0.0.1:5672/``) through a TCP
proxy of its own (``tcp_proxy``), sends a steady rate of ``/classify`` requests, cuts the proxy
for ``outage_s`` and restores it. It samples ``switchboard_outbox_pending`` from ``/metrics``,
then counts what reached the queue against the outbox (nothing lost, duplicates by key) and
writes the depth over time as CSV and a chart (``docs/delivery/``). Uses its own exchange and
queue names, deleted afterwards; the shared RabbitMQ server is never stopped.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from eval.bench.loadgen import free_port, metric_value, policy_workdir, service
from eval.bench.tcp_proxy import ProxyThread

RABBIT_URL = os.environ.get("SWITCHBOARD_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE_KEY = "dispatch.ticketing"  # the fake backend's confident service_action decisions


@dataclass
class Deliveries:
    """What a consumer of the queue saw, against what the outbox holds."""

    expected: int
    received: int
    unique: int
    lost: int
    unknown: int  # delivered keys with no outbox row: must be 0 (nothing before the commit)

    @property
    def duplicates(self) -> int:
        return self.received - self.unique


@dataclass
class OutageRun:
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # t, pending, answered
    answered: int = 0
    refused: int = 0
    cut_at: float = 0.0
    restored_at: float = 0.0
    drained_at: float | None = None
    deliveries: Deliveries | None = None

    @property
    def peak(self) -> float:
        return max((p for _, p, _ in self.samples), default=0.0)

    @property
    def drain_s(self) -> float | None:
        return None if self.drained_at is None else round(self.drained_at - self.restored_at, 2)


def via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def count_deliveries(db: Path, url: str, queue: str) -> Deliveries:
    """Drain ``queue`` and compare its message ids with the outbox of the SQLite store ``db``."""
    import aio_pika

    seen: Counter[str] = Counter()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, durable=True)
        while (message := await q.get(fail=False, timeout=10)) is not None:
            seen[str(message.message_id)] += 1
            await message.ack()
    with sqlite3.connect(db) as conn:
        keys = {row[0] for row in conn.execute("SELECT idempotency_key FROM outbox")}
    return Deliveries(
        expected=len(keys),
        received=sum(seen.values()),
        unique=len(seen),
        lost=len(keys - set(seen)),
        unknown=len(set(seen) - keys),
    )


async def delete_names(url: str, exchange: str, queues: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


async def _scenario(
    url: str,
    proxy: ProxyThread,
    run: OutageRun,
    *,
    before_s: float,
    outage_s: float,
    after_s: float,
    rate_per_s: float,
    drain_timeout_s: float,
) -> None:
    start = time.monotonic()
    stop_traffic = asyncio.Event()

    async def traffic(client: httpx.AsyncClient) -> None:
        i = 0
        pending: set[asyncio.Task[None]] = set()

        async def one(n: int) -> None:
            try:
                r = await client.post("/classify", json={"message": f"where is my order {n}?"})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            run.answered += ok
            run.refused += not ok

        while not stop_traffic.is_set():
            task = asyncio.create_task(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            await asyncio.sleep(1 / rate_per_s)
        await asyncio.gather(*pending)

    async def sample() -> None:
        while True:
            pending = await asyncio.to_thread(metric_value, url, "switchboard_outbox_pending")
            t = round(time.monotonic() - start, 2)
            run.samples.append((t, pending or 0.0, run.answered))
            if run.restored_at and pending == 0:
                if run.drained_at is None:
                    run.drained_at = t  # the first moment nothing was pending after the return
                if stop_traffic.is_set():
                    return
            await asyncio.sleep(0.25)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        load = asyncio.create_task(traffic(client))
        sampler = asyncio.create_task(sample())
        await asyncio.sleep(before_s)
        run.cut_at = round(time.monotonic() - start, 2)
        await asyncio.to_thread(proxy.cut)
        await asyncio.sleep(outage_s)
        run.restored_at = round(time.monotonic() - start, 2)
        await asyncio.to_thread(proxy.restore)
        await asyncio.sleep(after_s)
        stop_traffic.set()
        await load
        await asyncio.wait_for(sampler, drain_timeout_s)


def run(
    *,
    before_s: float = 5,
    outage_s: float = 15,
    after_s: float = 5,
    rate_per_s: float = 20,
    out_dir: Path | None = Path("docs/delivery"),
    drain_timeout_s: float = 60,
) -> OutageRun:
    rabbit_port = urlsplit(RABBIT_URL).port or 5672
    name = f"switchboard_bench_{uuid.uuid4().hex[:10]}"
    result = OutageRun()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy_workdir(root)
        proxy = ProxyThread(rabbit_port, free_port())
        proxy.restore()
        try:
            with service(
                root,
                latency_ms=5,
                SWITCHBOARD_BROKER_URL=via(RABBIT_URL, proxy.port),
                SWITCHBOARD_BROKER_EXCHANGE=name,
                SWITCHBOARD_BROKER_QUEUE_PREFIX=name,
                SWITCHBOARD_DELIVERY_POLL_S="0.2",
            ) as server:
                asyncio.run(
                    _scenario(
                        server.url,
                        proxy,
                        result,
                        before_s=before_s,
                        outage_s=outage_s,
                        after_s=after_s,
                        rate_per_s=rate_per_s,
                        drain_timeout_s=drain_timeout_s,
                    )
                )
        finally:
            proxy.close()
        queue = f"{name}.{QUEUE_KEY}"

        async def count() -> None:
            try:
                result.deliveries = await count_deliveries(root / "audit.db", RABBIT_URL, queue)
            finally:
                await delete_names(RABBIT_URL, name, [queue])

        asyncio.run(count())
    if out_dir is not None:
        write(result, out_dir)
    print(json.dumps(summary(result), indent=2))
    return result


def summary(run: OutageRun) -> dict[str, object]:
    d = run.deliveries
    return {
        "answered_200": run.answered,
        "not_200": run.refused,
        "outage_s": [run.cut_at, run.restored_at],
        "peak_outbox_depth": run.peak,
        "drain_s_after_broker_returned": run.drain_s,
        "deliveries": None
        if d is None
        else {
            "outbox_rows": d.expected,
            "received": d.received,
            "unique_keys": d.unique,
            "duplicates": d.duplicates,
            "lost": d.lost,
            "delivered_without_record": d.unknown,
        },
    }


def write(run: OutageRun, out_dir: Path) -> None:
    from eval.charts import outbox_depth_chart

    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "outage.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t_s", "outbox_pending", "answered_200"])
        writer.writerows(run.samples)
    (out_dir / "outage.json").write_text(json.dumps(summary(run), indent=2) + "\n")
    outbox_depth_chart(
        [(t, p) for t, p, _ in run.samples],
        (run.cut_at, run.restored_at),
        run.drained_at,
        out_dir / "outage.png",
    )
