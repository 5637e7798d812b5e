"""Refusal cost: how many over-capacity requests one process can answer 429 per second.

A spike is survived by refusing the excess cheaply. The service runs as its own process with one
model slot, no waiters and ``overload: reject``; one request holds the slot (the fake model
answers after 60 s, the policy's deadline is raised to match), and ``wrk`` then sends
``POST /classify`` as fast as 128 connections allow. Every answer but the held one is a 429 from
``service/admission.py``, given before the body is parsed. Reports refusals per second and their
latency, next to nothing else: this is the ceiling on the excess one replica can turn away.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from eval.bench import loadgen, spike
from eval.bench.report import emit

HOLD_MS = 60_000


def run(*, seconds: int = 10, connections: int = 128) -> dict[str, Any]:
    if not loadgen.have_wrk():
        raise SystemExit("the refusal benchmark needs wrk (Debian package wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policies = loadgen.policy_workdir(work)
        spike.set_overload(policies, "reject")
        loadgen.edit_policy(policies, lambda d: d["fallbacks"].update(model_deadline_ms=HOLD_MS))
        with loadgen.service(
            work, latency_ms=HOLD_MS, concurrency=1, queue=0, SWITCHBOARD_WARM_UP="false"
        ) as server:
            holder = threading.Thread(
                target=lambda: httpx.post(
                    server.url + "/classify", json={"message": "hold"}, timeout=HOLD_MS / 1000
                ),
                daemon=True,
            )
            holder.start()
            time.sleep(1)  # the held request has the only model slot
            loaded = loadgen.wrk(server.url + "/classify", seconds=seconds, connections=connections)
            refused = loadgen.metric_value(server.url, 'switchboard_shed_total{action="rejected"}')
    results = {
        "connections": connections,
        "refusals_per_s": loaded["rps"],
        "requests": loaded["requests"],
        "non_2xx": loaded["non_2xx"],
        "refused_by_metric": refused,
        "latency_ms": {k: loaded[k] for k in ("p50_ms", "p90_ms", "p99_ms")},
    }
    rows: list[list[Any]] = [
        ["what", "value"],
        ["refusals per second (429)", loaded["rps"]],
        ["answered non-2xx / requests", f"{loaded['non_2xx']} / {loaded['requests']}"],
        ["p50 / p99 ms", f"{loaded['p50_ms']} / {loaded['p99_ms']}"],
    ]
    emit("refusal", results, rows)
    return results
