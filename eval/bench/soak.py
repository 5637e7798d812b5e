"""Soak: steady load for a while; the server's memory, file handles, threads and rulesets.

The service runs as its own process (fake backend at 50 ms); an open-loop client offers a steady
rate for 60 s (30 min with ``--long``), every message with tokens never seen before (order
numbers, names), as real traffic has: a fixed set of messages would hide growth that depends on
the text, such as a tokenizer's vocabulary. Every ``sample_s`` the benchmark reads the server's RSS,
open file descriptors (``/proc/PID/fd``) and thread count, and ``switchboard_rulesets_compiled``
from ``/metrics``. Start (after a short warm-up) and end are read with the server idle, so the
client's open connections do not count as file descriptors. Reports start, end, the maximum
under load and the RSS slope over the second half of the run (a leak keeps climbing; a warm-up
plateau does not).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from eval.bench import loadgen, openloop
from eval.bench.report import emit, summary


def _slope_mib_per_min(points: list[tuple[float, float]]) -> float:
    half = points[len(points) // 2 :]
    if len(half) < 2:
        return 0.0
    xs, ys = [p[0] for p in half], [p[1] for p in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 60, 2)


def run(*, seconds: float = 60, rps: float = 100, sample_s: float = 10) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loadgen.policy_workdir(work)
        with loadgen.service(work, latency_ms=50) as server:

            def sample(t: float) -> None:
                point = loadgen.process_sample(server.pid)
                point["rulesets"] = loadgen.metric_value(
                    server.url, "switchboard_rulesets_compiled"
                ) or float("nan")
                samples.append({"t_s": round(t, 1), **point})
                # Progress on stderr: a 30-minute run that is interrupted still leaves its data.
                print(json.dumps(samples[-1]), file=sys.stderr, flush=True)

            async def main() -> openloop.Run:
                warm = openloop.OpenLoop(server.url, keep_bodies=False, unique=True)
                await warm.run(lambda _t: rps, 5)
                await asyncio.sleep(1)  # start and end are read idle: no client connections open
                sample(0.0)
                client = openloop.OpenLoop(
                    server.url,
                    keep_bodies=False,
                    unique=True,
                    max_requests=int(rps * (seconds + 5)),
                )
                next_at = [sample_s]

                def tick(t: float) -> None:
                    if t >= next_at[0]:
                        next_at[0] += sample_s
                        sample(t)

                run_ = await client.run(lambda _t: rps, seconds, on_tick=tick)
                await asyncio.sleep(1)
                sample(run_.elapsed_s + 1)
                return run_

            run_ = asyncio.run(main())
    start, end = samples[0], samples[-1]
    statuses: dict[str, int] = {}
    for r in run_.results:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    results: dict[str, Any] = {
        "seconds": seconds,
        "rps_offered": rps,
        "requests": len(run_.results),
        "statuses": statuses,
        "latency_ms": summary([r.latency_s for r in run_.results if r.status == 200], 1000),
        "start": start,
        "end": end,
        "max_rss_mib": max(s["rss_mib"] for s in samples),
        "rss_slope_second_half_mib_per_min": _slope_mib_per_min(
            [(s["t_s"], s["rss_mib"]) for s in samples]
        ),
        "samples": samples,
    }
    rows: list[list[Any]] = [["what", "start", "end", "max"]]
    for key in ("rss_mib", "fds", "threads", "rulesets"):
        rows.append([key, start[key], end[key], max(s[key] for s in samples)])
    rows.append(["requests (non-200)", len(run_.results), "", sum(
        n for k, n in statuses.items() if k != "200")])  # fmt: skip
    emit("soak", results, rows)
    return results
