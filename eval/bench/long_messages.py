"""Long messages with the embedded model: time per decision and verdicts lost to the deadline.

Every message of the traffic mix (``traffic_mix``) of 1,000-2,000 characters (VAERS narratives,
emails with quoted threads, voice transcripts, long chats), decided by the whole engine with the
default policy, its deadline and its bound on what the model reads (``prompt.model_input``),
one at a time, prefix cached. Reports p50/p95/max of the decision's time and of the model call,
the tokens the model read, and how many got no verdict in time (``llm.status`` not ``ok``);
then, apart, five long messages in other scripts (``other_scripts``), which pack more tokens
into each character.
Run on a quiet machine: two llama.cpp threads want both cores.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from engine import DecisionRequest
from engine.backends.embedded import EmbeddedBackend
from engine.backends.model_files import ModelSpec, assemble_model, default_model_dir
from engine.categories import VerdictStatus
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.policy.loader import load_policy
from eval.bench.other_scripts import other_scripts
from eval.bench.report import emit, percentile, summary
from eval.bench.traffic_mix import MixedMessage, traffic_mix

MIN_CHARS = 1_000
MAX_CHARS = 2_000


def long_messages() -> list[MixedMessage]:
    return [m for m in traffic_mix() if MIN_CHARS <= len(m.text) <= MAX_CHARS]


async def _decide_all(engine: Engine, messages: list[MixedMessage]) -> list[dict[str, Any]]:
    await engine.warm_up()
    rows = []
    for m in messages:
        started = time.perf_counter()
        record = await engine.decide(DecisionRequest(message=m.text, channel=m.channel))
        rows.append(
            {
                "kind": m.kind,
                "chars": len(m.text),
                "wall_s": time.perf_counter() - started,
                "llm_s": record.timings.llm_ms / 1000,
                "status": record.llm.status,
                "tokens": record.tokens.prompt,
            }
        )
    return rows


def run(spec: ModelSpec, policy_dir: Path) -> dict[str, Any]:
    loaded = load_policy(policy_dir, Path("prompts"))
    backend = EmbeddedBackend(assemble_model(spec, default_model_dir()), spec)
    engine = Engine.build(loaded, backend, rules_cache=RulesCache())
    messages = long_messages()
    try:
        rows = asyncio.run(_decide_all(engine, messages))
        dense = asyncio.run(_decide_all(engine, other_scripts()))
    finally:
        asyncio.run(backend.aclose())
    wall = [r["wall_s"] for r in rows]
    lost = [r for r in rows if r["status"] is not VerdictStatus.OK]
    results = {
        "model": spec.name,
        "policy": str(policy_dir),
        "messages": len(rows),
        "deadline_s": engine.deadline_s,
        "decision_ms": summary(wall, scale=1000),
        "decision_p95_ms": round(percentile(wall, 95) * 1000, 1),
        "decision_max_ms": round(max(wall) * 1000, 1),
        "model_ms": summary([r["llm_s"] for r in rows], scale=1000),
        "tokens_read": summary(
            [r["tokens"] for r in rows if r["status"] is VerdictStatus.OK], digits=0
        ),
        "no_verdict": len(lost),
        "no_verdict_by_status": dict(Counter(str(r["status"]) for r in lost)),
        "by_kind": dict(Counter(r["kind"] for r in rows)),
        # Not in the figures above (which stay comparable with earlier runs): other scripts.
        "other_scripts": [
            {
                "kind": r["kind"],
                "chars": r["chars"],
                "decision_ms": round(r["wall_s"] * 1000, 1),
                "tokens": r["tokens"],
                "status": str(r["status"]),
            }
            for r in dense
        ],
    }
    table: list[list[Any]] = [["what", "p50", "p95", "max", "n"]]
    table.append(
        [
            "decision ms",
            results["decision_ms"]["p50"],
            results["decision_p95_ms"],
            results["decision_max_ms"],
            len(rows),
        ]
    )
    read = [r["tokens"] for r in rows if r["status"] is VerdictStatus.OK] or [0]
    table.append(
        [
            "tokens read by the model (not cached; verdicts only)",
            results["tokens_read"]["p50"],
            percentile(read, 95),
            max(read),
            len(read),
        ]
    )
    table.append(["no verdict within the deadline", len(lost), "", "", len(rows)])
    dense_wall = [r["wall_s"] for r in dense]
    table.append(
        [
            "other scripts: decision ms",
            round(percentile(dense_wall, 50) * 1000, 1),
            round(percentile(dense_wall, 95) * 1000, 1),
            round(max(dense_wall) * 1000, 1),
            len(dense),
        ]
    )
    dense_lost = sum(1 for r in dense if r["status"] is not VerdictStatus.OK)
    table.append(["other scripts: no verdict within the deadline", dense_lost, "", "", len(dense)])
    emit("long_messages", results, table)
    return results
