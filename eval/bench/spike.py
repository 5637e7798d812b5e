"""Spike: steady load, then 10x the sustainable rate, then steady again.

The service runs as its own process with the fake backend at 50 ms and a model pool of
``concurrency`` slots: its sustainable rate is set by the model, as in production, and the steady
rate is 80% of the pool's capacity (``concurrency / latency``). The spike offers 10x the steady
rate, open loop (callers do not slow down because the service is busy), for 30 s (10 s short).
The model queue is sized so that no admitted request waits longer than the latency budget
allows; everything beyond it gets the policy's overload behaviour (here: 429 + Retry-After).

Reports the count of each outcome (200, 200-degraded, 429, 503, other 5xx, timeouts, connection
errors), p50/p99 of the answered requests per phase, the recovery time (from the end of the
spike to the first half-second window whose requests all got a 200 with p99 within 1.5x of the
steady p99), whether every 429/503 had ``Retry-After``, and the audit check: every decision
answered 200 is in the SQLite file, read from a fresh connection while the server runs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from eval.bench import loadgen, openloop
from eval.bench.openloop import Result
from eval.bench.report import emit, percentile, summary

BUDGET_MS = 250.0
WINDOW_S = 0.5


def set_overload(policies: Path, mode: str, status: int = 429, retry_after_s: int = 1) -> None:
    overload = {"mode": mode, "status_code": status, "retry_after_s": retry_after_s}
    loadgen.edit_policy(policies, lambda d: d["fallbacks"].update(overload=overload))


def queue_for_budget(concurrency: int, latency_ms: float, budget_ms: float) -> int:
    """Waiters allowed so that the wait plus the call itself fit in ~40% of the budget.

    A waiter at position k waits about ``ceil(k / concurrency)`` model latencies; the rest of the
    budget is left for the service's own work, which queues behind the event loop when the
    process is busy shedding a spike.
    """
    return max(0, int(0.4 * budget_ms / latency_ms - 1) * concurrency)


def outcome(r: Result) -> str:
    if r.status == 200:
        return "200_degraded" if b'"degraded":true' in r.body else "200"
    if r.status in (429, 503):
        return str(r.status)
    if r.status >= 500:
        return "5xx"
    return {0: "timeout", -1: "connection_error", -2: "not_sent"}.get(r.status, str(r.status))


def _phase_stats(results: list[Result]) -> dict[str, Any]:
    answered = [r.latency_s for r in results if r.status == 200]
    counts = Counter(outcome(r) for r in results)
    return {"offered": len(results), "counts": dict(counts), "latency_ms": summary(answered, 1000)}


def recovery_s(results: list[Result], spike_end: float, limit_ms: float, until: float) -> float:
    """Seconds after the spike until a window is all-200 and its p99 is back under ``limit_ms``."""
    t = spike_end
    while t + WINDOW_S <= until:
        window = [r for r in results if t <= r.sent_at < t + WINDOW_S]
        if window and all(r.status == 200 for r in window):
            p99 = percentile([r.latency_s for r in window], 99) * 1000
            if p99 <= limit_ms:
                return round(t + WINDOW_S - spike_end, 2)
        t += WINDOW_S
    return float("inf")


def audit_missing(db: Path, results: list[Result]) -> tuple[int, int]:
    answered = {json.loads(r.body)["decision_id"] for r in results if r.status == 200}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = {row[0] for row in conn.execute("SELECT decision_id FROM decisions")}
    finally:
        conn.close()
    return len(answered), len(answered - stored)


def run(
    *,
    steady_s: float = 10,
    spike_s: float = 10,
    after_s: float = 10,
    latency_ms: float = 50,
    concurrency: int = 4,
    mode: str = "reject",
    max_loop_lag_ms: float = 0,
    busy_cores: int = 0,
) -> dict[str, Any]:
    """``busy_cores`` processes spin for the whole run: a machine shared with noisy neighbours."""
    capacity = concurrency / (latency_ms / 1000)
    steady = round(0.8 * capacity)
    spike = 10 * steady
    queue = queue_for_budget(concurrency, latency_ms, BUDGET_MS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        set_overload(loadgen.policy_workdir(work), mode)
        extra = {"SWITCHBOARD_MAX_LOOP_LAG_MS": str(max_loop_lag_ms)}
        with (
            loadgen.busy(busy_cores),
            loadgen.service(
                work, latency_ms=latency_ms, concurrency=concurrency, queue=queue, **extra
            ) as server,
        ):
            warm = openloop.OpenLoop(server.url)
            asyncio.run(warm.run(lambda _t: steady, 2))
            start, end = steady_s, steady_s + spike_s
            total = steady_s + spike_s + after_s
            client = openloop.OpenLoop(
                server.url, timeout_s=5, max_requests=int(spike * (total + 5))
            )
            run_ = asyncio.run(client.run(lambda t: spike if start <= t < end else steady, total))
            answered, missing = audit_missing(work / "audit.db", run_.results)
    results = run_.results
    before = [r for r in results if r.sent_at < start]
    during = [r for r in results if start <= r.sent_at < end]
    after = [r for r in results if r.sent_at >= end]
    base = _phase_stats(before)
    limit = max(1.5 * base["latency_ms"]["p99"], base["latency_ms"]["p99"] + 10)
    counts = Counter(outcome(r) for r in results)
    shed = [r for r in results if r.status in (429, 503)]
    answered_latency = [r.latency_s for r in results if r.status == 200]
    res: dict[str, Any] = {
        "config": {
            "latency_ms": latency_ms,
            "model_concurrency": concurrency,
            "model_queue": queue,
            "overload_mode": mode,
            "max_loop_lag_ms": max_loop_lag_ms,
            "busy_cores": busy_cores,
            "steady_rps": steady,
            "spike_rps": spike,
            "phases_s": [steady_s, spike_s, after_s],
        },
        "counts": dict(counts),
        "five_xx": counts["5xx"],
        "timeouts": counts["timeout"],
        "retry_after_on_all_shed": all(r.retry_after for r in shed),
        "answered_p99_ms": round(percentile(answered_latency, 99) * 1000, 1),
        "answered_p99_under_budget": percentile(answered_latency, 99) * 1000 < BUDGET_MS,
        "phases": {"steady": base, "spike": _phase_stats(during), "after": _phase_stats(after)},
        "recovery_s": recovery_s(results, end, limit, total),
        "recovery_limit_p99_ms": round(limit, 1),
        "audit": {"answered_200": answered, "missing_from_store": missing},
    }
    rows: list[list[Any]] = [
        [
            "phase",
            "offered rps",
            "200",
            "degraded",
            "429",
            "503",
            "5xx",
            "timeout",
            "p50 ms",
            "p99 ms",
        ]
    ]
    for name, rate, items in (
        ("steady", steady, before),
        ("spike", spike, during),
        ("after", steady, after),
    ):
        s = _phase_stats(items)
        c = s["counts"]
        rows.append(
            [
                name,
                rate,
                c.get("200", 0),
                c.get("200_degraded", 0),
                c.get("429", 0),
                c.get("503", 0),
                c.get("5xx", 0),
                c.get("timeout", 0),
                s["latency_ms"]["p50"],
                s["latency_ms"]["p99"],
            ]
        )
    rows.append(["recovery", "", "", "", "", "", "", "", "", f"{res['recovery_s']} s"])
    rows.append(["audit", "", answered, "", "", "", "", "", "missing", missing])
    emit("spike", res, rows)
    return res
