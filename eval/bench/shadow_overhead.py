"""Shadow overhead: live latency and model calls with a candidate in shadow, and without.

One ``switchboard serve`` process takes the same open-loop ``/classify`` load three times:
no shadow; a candidate whose prompt renders identically (it drops the ``fainted`` keyword from
``severe_event``: a safety keyword removed); and a candidate whose prompt differs (one more
few-shot example), sampled at ``SWITCHBOARD_SHADOW_SAMPLE_RATE``. Per phase: live p50/p99, the
calls the backend received (``switchboard_model_requests``) per live request, and the shadow
report's counts (shared verdicts, own calls, skipped, decisions leaving safety). With identical
prompts the shadow must add no call: the run fails loudly if it does.

``backend="embedded"`` runs the packaged model (concurrency 1; the command line loads it with one
caller in a closed loop); ``"fake"`` a scripted backend with a fixed latency, open loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from eval.bench import loadgen, openloop
from eval.bench.report import emit, summary

ADMIN = {"Authorization": f"Bearer {loadgen.ADMIN_TOKEN}"}


def _candidate(work: Path, name: str, file: str, change: Any) -> Path:
    target = work / name / "contact-center"
    shutil.copytree(work / "policies" / "contact-center", target)
    path = target / file
    data = yaml.safe_load(path.read_text("utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return work / name


def _patient(policy: dict[str, Any]) -> None:
    policy["fallbacks"]["model_deadline_ms"] = 30_000


def _drop_fainted(policy: dict[str, Any]) -> None:
    policy["keyword_groups"]["severe_event"]["keywords"].remove("fainted")


def _one_more_example(policy: dict[str, Any]) -> None:
    # A new example changes the prompt prefix, so the probe head (fitted under the old one) is
    # stale and `check` refuses it: this candidate decides from the label probabilities.
    policy.pop("head", None)
    example = {"message": "Is the pharmacy open on Sunday?", "label": "informational"}
    policy["prompt"]["examples"].append(example)


def _calls(url: str) -> float:
    return loadgen.metric_value(url, "switchboard_model_requests") or 0.0


def _settle(client: httpx.Client, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        report: dict[str, Any] = client.get("/admin/shadow", headers=ADMIN).json()
        run = report["run"]
        done = sum(run["decided"].values()) + sum(run["skipped"].values())
        if done >= run["offered"] or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def _load(url: str, rps: float, seconds: float, connections: int | None) -> openloop.Run:
    if connections is None:
        client = openloop.OpenLoop(url, timeout_s=60, keep_bodies=False)
        return asyncio.run(client.run(lambda _t: rps, seconds))

    async def closed() -> openloop.Run:  # openloop.closed_loop, with a deadline a slow model fits
        client = openloop.OpenLoop(
            url, timeout_s=60, max_connections=connections, keep_bodies=False
        )
        result = openloop.Run(started=time.perf_counter())
        end = result.started + seconds

        async def caller(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                await client._one(result, i)
                i += connections

        await asyncio.gather(*(caller(k) for k in range(connections)))
        result.elapsed_s = time.perf_counter() - result.started
        await client.aclose()
        return result

    return asyncio.run(closed())


@dataclass
class _Phase:
    name: str
    candidate: Path | None
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    calls: float = 0
    offered: int = 0
    decided: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    leave: int = 0
    enter: int = 0
    compared: int = 0
    agreed: int = 0

    def add_report(self, report: dict[str, Any]) -> None:
        run_ = report["run"]
        self.offered += run_["offered"]
        self.decided.update(run_["decided"])
        self.skipped.update(run_["skipped"])
        for t in report["tenants"]:
            self.leave += t["leave_safety"]
            self.enter += t["enter_safety"]
            self.compared += t["total"]
            self.agreed += t["agreed"]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.name,
            "requests": self.requests,
            "ok": len(self.latencies),
            "latency_ms": summary(self.latencies, 1000),
            "model_calls": int(self.calls),
        }
        if self.candidate is not None:
            out["shadow"] = {
                "offered": self.offered,
                "decided": dict(self.decided),
                "skipped": dict(self.skipped),
                "leave_safety": self.leave,
                "enter_safety": self.enter,
                "agreement": round(self.agreed / self.compared, 4) if self.compared else None,
            }
        return out


def run(
    *,
    backend: str = "fake",
    seconds: float = 20,
    rps: float = 50,
    connections: int | None = None,
    rounds: int = 2,
    latency_ms: float = 20,
) -> dict[str, Any]:
    """``seconds`` per phase, split into ``rounds`` that take the phases in turn (off, identical,
    different, off, ...), so a neighbour's load on a shared machine falls on all of them alike.

    Open-loop load at ``rps``, or ``connections`` callers each waiting for its answer (closed
    loop: the embedded model, one call at a time, is kept busy without a queue that would turn
    every request into a deadline timeout)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loadgen.policy_workdir(work)
        # Overhead, not fallbacks, is measured: a slow model on a busy machine must not turn into
        # deadline timeouts and an open circuit (rules-only answers in a few ms) in one phase and
        # not another. The candidates are copies, so they have the same deadline.
        loadgen.edit_policy(work / "policies", _patient)
        same = _candidate(work, "candidate-same-prompt", "rules.yaml", _drop_fainted)
        other = _candidate(work, "candidate-new-example", "policy.yaml", _one_more_example)
        env = loadgen.service_env(
            work, latency_ms=latency_ms, concurrency=1 if backend == "embedded" else 64, queue=256
        )
        env["SWITCHBOARD_BACKEND"] = backend
        env["SWITCHBOARD_BREAKER_FAILURES"] = "1000000"
        argv = [sys.executable, "-m", "engine", "serve", "--backend", backend]
        phases = [
            _Phase("off", None),
            _Phase("shadow, identical prompt", same),
            _Phase("shadow, prompt differs (sampled)", other),
        ]
        with (
            loadgen.run_server(
                f"shadow-{backend}", argv, env, "/readyz", work, ready_timeout_s=300
            ) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            for _ in range(rounds):
                for phase in phases:
                    if phase.candidate is not None:
                        body = {"directory": str(phase.candidate)}
                        r = client.post("/admin/shadow", json=body, headers=ADMIN)
                        if r.status_code != 201:
                            raise SystemExit(f"shadow refused: {r.status_code} {r.text}")
                    before = _calls(server.url)
                    result = _load(server.url, rps, seconds / rounds, connections)
                    if phase.candidate is not None:
                        phase.add_report(_settle(client))
                        client.delete("/admin/shadow", headers=ADMIN).raise_for_status()
                    phase.calls += _calls(server.url) - before
                    phase.requests += len(result.results)
                    phase.latencies += [x.latency_s for x in result.results if x.status == 200]
    phases_json = [p.as_json() for p in phases]
    same_phase = phases_json[1]
    # Each live request makes at most one call: more calls than requests, or any call of the
    # shadow's own, is a call the shadow added.
    extra_same = same_phase["shadow"]["decided"].get("model", 0) + max(
        0, same_phase["model_calls"] - same_phase["requests"]
    )
    results = {
        "backend": backend,
        "load": f"closed loop, {connections} callers" if connections else f"open loop, {rps} rps",
        "seconds": seconds,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "phases": phases_json,
        "extra_calls_identical_prompt": extra_same,
    }
    rows: list[list[Any]] = [
        ["phase", "requests ok", "p50 ms", "p99 ms", "model calls", "shadow shared / own call",
         "skipped", "leave safety"]
    ]  # fmt: skip
    for p in phases_json:
        shadow = p.get("shadow", {})
        decided = shadow.get("decided", {})
        rows.append(
            [
                p["phase"],
                p["ok"],
                p["latency_ms"]["p50"],
                p["latency_ms"]["p99"],
                p["model_calls"],
                f"{decided.get('shared', 0)} / {decided.get('model', 0)}" if shadow else "-",
                sum(shadow.get("skipped", {}).values()) if shadow else "-",
                shadow.get("leave_safety", "-"),
            ]
        )
    emit("shadow_overhead", results, rows)
    if extra_same != 0:
        raise SystemExit(
            f"shadow with an identical prompt added {extra_same} model calls (must be 0)"
        )
    return results
