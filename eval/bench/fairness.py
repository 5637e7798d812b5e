"""Fairness: tenant A floods at 10x its rate limit while tenant B sends at its normal rate.

The service runs as its own process with authentication on, two tenants (each 20 requests/s,
burst 20, half the model slots) and the fake model (20 ms). First B alone at 20/s gives its normal
latency; then A at 200/s and B at 20/s together, open loop (requests are sent on schedule, not
when the previous answer arrives). Reports, per tenant, answered and refused counts and the
answered latency percentiles. The claim: B gets no refusals and its p99 stays near its baseline,
because A is refused at its own token bucket (429 naming its limit) and cannot hold more than
its share of model slots. Numbers are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

from eval.bench import loadgen
from eval.bench.report import emit, summary

RATE = 20.0


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


async def _send(
    client: httpx.AsyncClient, key: str, rate: float, seconds: float, out: list[Any]
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    start = time.perf_counter()
    tasks = []

    async def one() -> None:
        t0 = time.perf_counter()
        r = await client.post("/classify", json={"message": "where is my order?"}, headers=headers)
        out.append((r.status_code, time.perf_counter() - t0, r.headers.get("retry-after")))

    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)


async def _load(url: str, plan: list[tuple[str, float]], seconds: float) -> list[list[Any]]:
    limits = httpx.Limits(max_connections=512)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        results: list[list[Any]] = [[] for _ in plan]
        await asyncio.gather(
            *(
                _send(client, key, rate, seconds, out)
                for (key, rate), out in zip(plan, results, strict=True)
            )
        )
    return results


def _describe(results: list[Any]) -> dict[str, Any]:
    statuses = Counter(status for status, _, _ in results)
    answered = [latency for status, latency, _ in results if status == 200]
    return {
        "sent": len(results),
        "answered": statuses.get(200, 0),
        "refused_429": statuses.get(429, 0),
        "other": {str(k): v for k, v in statuses.items() if k not in (200, 429)},
        "latency_ms": summary(answered, scale=1000),
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
            (baseline,) = asyncio.run(_load(server.url, [(key_b, RATE)], seconds))
            flood, normal = asyncio.run(
                _load(server.url, [(key_a, 10 * RATE), (key_b, RATE)], seconds)
            )
    retry_after = sorted({ra for status, _, ra in flood if status == 429})
    results: dict[str, Any] = {
        "seconds": seconds,
        "limit_per_s": RATE,
        "b_alone": _describe(baseline),
        "a_flooding": {**_describe(flood), "retry_after_values": retry_after},
        "b_during_flood": _describe(normal),
    }
    rows: list[list[Any]] = [["phase", "sent", "answered", "429", "other", "p50 ms", "p99 ms"]]
    for name in ("b_alone", "a_flooding", "b_during_flood"):
        r = results[name]
        rows.append(
            [
                name,
                r["sent"],
                r["answered"],
                r["refused_429"],
                r["other"] or "-",
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
            ]
        )
    emit("fairness", results, rows)
    return results
