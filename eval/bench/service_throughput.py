"""Service throughput: ``POST /classify`` on a real server against a bare FastAPI endpoint.

Three uvicorn processes on loopback, loaded one after the other in the same run by the same
closed-loop generator (``wrk`` when installed, else the asyncio client): the bare endpoint that
returns a constant (the ceiling), then ``switchboard serve --backend fake`` with the fake model at
0 ms and at 50 ms (Presidio redaction, rules, workflow, SQLite audit write and the JSON log line
all included). Model concurrency and queue are sized for a fake backend (64/256) so the model
guard never sheds: this measures the service's own cost. Reports rps, latency percentiles and
each server's rps as a fraction of the bare endpoint's.

Also the server process's CPU time per answered request (all its threads, from /proc): on a
machine shared with other work, rps moves with what the neighbours do, CPU per request much
less, so ``cpu_ratio_to_bare`` (bare CPU per request over this server's) is the steadier
reading of the same question.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from eval.bench import loadgen, openloop
from eval.bench.report import emit, summary


def _load(server: loadgen.Server, seconds: int, connections: int) -> dict[str, float]:
    before = loadgen.cpu_seconds(server.pid)
    result = _drive(server.url, seconds, connections)
    spent = loadgen.cpu_seconds(server.pid) - before
    answered = result["requests"] - result["non_2xx"] - result["socket_errors"]
    result["cpu_us_per_request"] = round(spent / max(answered, 1) * 1e6, 1)
    return result


def _drive(url: str, seconds: int, connections: int) -> dict[str, float]:
    if loadgen.have_wrk():
        return loadgen.wrk(url + "/classify", seconds=seconds, connections=connections)
    run = openloop.closed_loop(url, connections=connections, seconds=seconds)
    ok = [r.latency_s for r in run.results if r.status == 200]
    s = summary(ok, 1000, 2)
    return {
        "rps": round(len(ok) / run.elapsed_s, 1),
        "requests": len(run.results),
        "non_2xx": sum(1 for r in run.results if r.status != 200),
        "socket_errors": sum(1 for r in run.results if r.status < 0),
        "p50_ms": s["p50"],
        "p90_ms": s["p90"],
        "p99_ms": s["p99"],
        "max_ms": round(max(ok, default=0) * 1000, 2),
    }


def run(*, seconds: int = 10, rounds: int = 1, connections: int = 64) -> dict[str, Any]:
    """``rounds`` interleaved passes (bare, 0 ms, 50 ms); the median pass per server counts."""
    passes: dict[str, list[dict[str, float]]] = {"bare": [], "fake_0ms": [], "fake_50ms": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loadgen.policy_workdir(work)
        (work / "50").mkdir()
        loadgen.policy_workdir(work / "50")
        with (
            loadgen.bare(work) as bare,
            loadgen.service(work, latency_ms=0) as fast,
            loadgen.service(work / "50", latency_ms=50) as slow,
        ):
            for server in (bare, fast, slow):  # warm: imports, caches, first connections
                _load(server, 2, connections)
            for _ in range(rounds):
                for name, server in (("bare", bare), ("fake_0ms", fast), ("fake_50ms", slow)):
                    passes[name].append(_load(server, seconds, connections))
    results: dict[str, Any] = {
        "loadgen": "wrk" if loadgen.have_wrk() else "asyncio",
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
    }
    for name, runs in passes.items():
        median_rps = statistics.median(r["rps"] for r in runs)
        results[name] = min(runs, key=lambda r: abs(r["rps"] - median_rps))
    ceiling = results["bare"]["rps"]
    bare_cpu = results["bare"]["cpu_us_per_request"]
    for name in ("fake_0ms", "fake_50ms"):
        results[name]["ratio_to_bare"] = round(results[name]["rps"] / ceiling, 3)
        cpu = results[name]["cpu_us_per_request"]
        results[name]["cpu_ratio_to_bare"] = round(bare_cpu / cpu, 3) if cpu else None
    rows: list[list[Any]] = [
        [
            "server",
            "rps",
            "ratio",
            "CPU µs/request",
            "CPU ratio",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "non-2xx",
            "errors",
        ]
    ]
    for name in passes:
        r = results[name]
        rows.append(
            [
                name,
                r["rps"],
                r.get("ratio_to_bare", 1.0),
                r["cpu_us_per_request"],
                r.get("cpu_ratio_to_bare", 1.0),
                r["p50_ms"],
                r["p90_ms"],
                r["p99_ms"],
                r["non_2xx"],
                r["socket_errors"],
            ]
        )
    emit("service_throughput", results, rows)
    return results
