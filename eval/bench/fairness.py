"""Fairness: tenant A floods at 10x its rate limit while tenant B sends at its normal rate.

The service runs as its own process with authentication on, two tenants (each 20 requests/s,
burst 20, half the model slots) and the fake model (20 ms). First B alone at 20/s gives its normal
latency; then A at 200/s and B at 20/s together. Each tenant's traffic comes from a process of
its own, open loop: request i is due at ``i / rate`` and its latency counts from that moment, so
a late sender or a busy connection pool shows up as latency instead of lowering the load. The
client is a minimal HTTP/1.1 one over keep-alive sockets (``httpx`` costs a millisecond of CPU a
request, enough on 2 shared cores for the load generator to starve the service it measures).

Reports, per tenant, answered and refused counts, answered latency percentiles and how late the
sender was. The claim: B gets no refusals and its p99 stays near its baseline, because A is
refused at its own token bucket (429 naming its limit) and cannot hold more than its share of
model slots. Numbers are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from eval.bench import loadgen
from eval.bench.report import emit, summary

RATE = 20.0
CONNECTIONS = 64
BODY = json.dumps({"message": "where is my order?"}).encode()


def _tenants(root: Path) -> None:
    for tenant in ("tenant-a", "tenant-b"):
        data = {
            "id": tenant,
            "region": "local",
            "policies": ["*"],
            "rate_per_s": RATE,
            "burst": int(RATE),
            "model_share": 0.5,
        }
        (root / "tenants" / f"{tenant}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _exchange(conn: Connection, request: bytes) -> int:
    """Send one request on a keep-alive connection; the status, once the body is read."""
    reader, writer = conn
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _open_loop(url: str, key: str, rate: float, seconds: float) -> list[Any]:
    """(status, latency from the due time, lateness of the send) per request."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST /classify HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection(host, port))
    out: list[Any] = []

    async def one(due: float) -> None:
        sent = time.perf_counter()
        conn = await pool.get()
        try:
            status = await _exchange(conn, request)
        finally:
            pool.put_nowait(conn)
        out.append((status, time.perf_counter() - due, sent - due))

    start = time.perf_counter() + 0.1
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return out


def _sender(url: str, key: str, rate: float, seconds: float) -> list[Any]:
    return asyncio.run(_open_loop(url, key, rate, seconds))


def _load(url: str, plan: list[tuple[str, float]], seconds: float) -> list[list[Any]]:
    """Each tenant's traffic from a process of its own, so that one sender's CPU cannot show up
    as the other tenant's latency."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(plan), mp_context=spawn) as pool:
        futures = [pool.submit(_sender, url, key, rate, seconds) for key, rate in plan]
        return [f.result() for f in futures]


def _describe(results: list[Any], seconds: float) -> dict[str, Any]:
    statuses = Counter(status for status, _, _ in results)
    return {
        "sent": len(results),
        "sent_per_s": round(len(results) / seconds, 1),
        "answered": statuses.get(200, 0),
        "refused_429": statuses.get(429, 0),
        "other": {str(k): v for k, v in statuses.items() if k not in (200, 429)},
        "latency_ms": summary([lat for s, lat, _ in results if s == 200], scale=1000),
        "refused_latency_ms": summary([lat for s, lat, _ in results if s == 429], scale=1000),
        # How far behind schedule the sender was (its own CPU starved); counted in latency too.
        "sent_late_ms": summary([late for _, _, late in results], scale=1000),
    }


def run(*, seconds: float = 10) -> dict[str, Any]:
    from service.access.keys import KeyStore
    from service.access.principal import Role

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loadgen.policy_workdir(work)
        _tenants(work)
        keys_db = str(work / "keys.db")
        store = KeyStore(keys_db)
        key_a = store.create("tenant-a", Role.CLIENT)[0]
        key_b = store.create("tenant-b", Role.CLIENT)[0]
        store.close()
        with loadgen.service(
            work,
            latency_ms=20,
            concurrency=4,
            queue=16,
            SWITCHBOARD_AUTH="on",
            SWITCHBOARD_KEYS_DB=keys_db,
            SWITCHBOARD_WARM_UP="false",
        ) as server:
            (baseline,) = _load(server.url, [(key_b, RATE)], seconds)
            flood, normal = _load(server.url, [(key_a, 10 * RATE), (key_b, RATE)], seconds)
    results: dict[str, Any] = {
        "seconds": seconds,
        "limit_per_s": RATE,
        "b_alone": _describe(baseline, seconds),
        "a_flooding": _describe(flood, seconds),
        "b_during_flood": _describe(normal, seconds),
    }
    header = ["phase", "sent/s", "answered", "429", "other", "p50 ms", "p99 ms", "late p99 ms"]
    rows: list[list[Any]] = [header]
    for name in ("b_alone", "a_flooding", "b_during_flood"):
        r = results[name]
        rows.append(
            [
                name,
                r["sent_per_s"],
                r["answered"],
                r["refused_429"],
                r["other"] or "-",
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["sent_late_ms"]["p99"],
            ]
        )
    emit("fairness", results, rows)
    return results
