"""Reload under load: 100 policy reloads while ``/classify`` takes steady traffic.

Between reloads the ``service_action`` threshold in a temporary copy of ``policies/`` flips
between two values, so the reloads alternate between two revisions. Checks: no failed request
(anything but a 200) and no failed reload; every decision's ``policy.revision`` is one of the two;
each decision's own path shows the threshold of the revision it is stamped with (so the stamp is
the revision that produced it, not just one that was active nearby); and the audit record of
every decision carries the same revision. Also reports the durable-rules rulesets compiled
before and after (alternating revisions must reuse them, not compile 100).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from eval.bench import loadgen, openloop
from eval.bench.report import emit, summary

THRESHOLDS = (0.55, 0.56)


def _set_threshold(policies: Path, value: float) -> None:
    loadgen.edit_policy(policies, lambda d: d["thresholds"].update(service_action=value))


async def _reloads(
    url: str, policies: Path, count: int, gap_s: float, out: list[tuple[float, int, str, float]]
) -> None:
    headers = {"Authorization": f"Bearer {loadgen.ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        for i in range(count):
            value = THRESHOLDS[(i + 1) % 2]
            await asyncio.to_thread(_set_threshold, policies, value)
            started = time.perf_counter()
            r = await client.post("/admin/reload")
            took = time.perf_counter() - started
            revision = r.json()["active"][0]["revision"] if r.status_code == 200 else ""
            out.append((took, r.status_code, revision, value))
            await asyncio.sleep(gap_s)


def _threshold_in_path(decision: dict[str, Any]) -> float | None:
    for step in decision["decision_path"]:
        if step["stage"] == "threshold" and step["code"] == "accepted":
            return float(step["detail"].rsplit(">=", 1)[1])
    return None


def run(*, reloads: int = 100, rps: float = 100, gap_s: float = 0.1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policies = loadgen.policy_workdir(work)
        _set_threshold(policies, THRESHOLDS[0])
        with loadgen.service(work, latency_ms=10) as server:
            compiled_before = loadgen.metric_value(server.url, "switchboard_rulesets_compiled")
            done: list[tuple[float, int, str, float]] = []

            async def main() -> openloop.Run:
                client = openloop.OpenLoop(server.url, timeout_s=10)
                stop = asyncio.Event()
                reloader = asyncio.create_task(_reloads(server.url, policies, reloads, gap_s, done))
                reloader.add_done_callback(lambda _: stop.set())
                load = asyncio.create_task(client.run(lambda _t: 0 if stop.is_set() else rps, 600))
                await reloader
                await asyncio.sleep(1)
                client.max_requests = 0  # ends the open loop at its next tick
                return await load

            run_ = asyncio.run(main())
            compiled_after = loadgen.metric_value(server.url, "switchboard_rulesets_compiled")
            conn = sqlite3.connect(f"file:{work / 'audit.db'}?mode=ro", uri=True)
            try:
                stored = dict(conn.execute("SELECT decision_id, policy_revision FROM decisions"))
            finally:
                conn.close()
    decisions = [json.loads(r.body) for r in run_.results if r.status == 200]
    failed = sum(1 for r in run_.results if r.status != 200)
    threshold_of = {rev: value for _, status, rev, value in done if status == 200}
    revisions = set(threshold_of)
    unknown = [d for d in decisions if d["policy"]["revision"] not in revisions]
    inconsistent = [
        d
        for d in decisions
        if _threshold_in_path(d) is not None
        and _threshold_in_path(d) != threshold_of.get(d["policy"]["revision"])
    ]
    audit_mismatch = [
        d for d in decisions if stored.get(d["decision_id"]) != d["policy"]["revision"]
    ]
    seen = {d["policy"]["revision"] for d in decisions}
    results: dict[str, Any] = {
        "reloads": len(done),
        "reload_failures": sum(1 for _, status, _, _ in done if status != 200),
        "reload_ms": summary([t for t, *_ in done], 1000),
        "revisions": sorted(revisions),
        "revisions_seen_in_decisions": len(seen),
        "requests": len(run_.results),
        "failed_requests": failed,
        "decisions_with_unknown_revision": len(unknown),
        "decisions_whose_path_disagrees_with_stamp": len(inconsistent),
        "decisions_checked_against_threshold": sum(
            1 for d in decisions if _threshold_in_path(d) is not None
        ),
        "audit_revision_mismatch": len(audit_mismatch),
        "rulesets_compiled": {"before": compiled_before, "after": compiled_after},
        "latency_ms": summary([r.latency_s for r in run_.results if r.status == 200], 1000),
    }
    rows: list[list[Any]] = [
        ["what", "value"],
        ["reloads (failed)", f"{results['reloads']} ({results['reload_failures']})"],
        ["reload time p50 / p99 ms",
         f"{results['reload_ms']['p50']} / {results['reload_ms']['p99']}"],
        ["requests (failed)", f"{results['requests']} ({failed})"],
        ["revisions active / seen in decisions", f"{len(revisions)} / {len(seen)}"],
        ["unknown revision / path disagrees / audit mismatch",
         f"{len(unknown)} / {len(inconsistent)} / {len(audit_mismatch)}"],
        ["rulesets compiled before / after", f"{compiled_before} / {compiled_after}"],
        ["classify p50 / p99 ms",
         f"{results['latency_ms']['p50']} / {results['latency_ms']['p99']}"],
    ]  # fmt: skip
    emit("reload_under_load", results, rows)
    return results
