"""Where the engine's own time and redaction's time go: cProfile, functions by share of the total.

``python -m eval.bench profile`` decides 3,000 messages with the fake backend at zero latency,
then redacts a 1,000-character message full of PII 50 times, and prints for each the functions
with the largest cumulative time as a share of the whole (profiler overhead inflates absolute
times about 3x; the shares are what to read). This is what found the phone matcher's per-region
scan behind most of redaction's cost (``redaction.phone_regions``).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from pathlib import Path
from typing import Any

from engine import DecisionRequest
from engine.policy.loader import load_policy
from eval.bench.engine_overhead import PII_MESSAGE, fake_engine
from eval.bench.messages import MESSAGES
from eval.bench.report import emit

WATCH = {
    "engine": {
        "Engine.decide (total)": ("engine/decide/engine.py", "decide"),
        "durable-rules evaluation": ("engine/decide/rules.py", "evaluate"),
        "keyword and regex matching": ("engine/decide/keywords.py", "search"),
        "prompt rendering": ("engine/decide/prompts.py", "render"),
        "pydantic models (record, verdict)": ("pydantic/main.py", "__init__"),
        "workflow": ("engine/decide/workflow.py", "run_workflow"),
        "combining": ("engine/decide/combine.py", "combine"),
        "fake backend (not engine work)": ("engine/backends/fake.py", "score"),
    },
    "redaction": {
        "PresidioRedactor.redact (total)": ("engine/pii/presidio.py", "redact"),
        "phone recognizer": ("phone_recognizer.py", "analyze"),
        "context enhancement": ("analyzer_engine.py", "_enhance_using_context"),
        "spaCy tokenization": ("spacy_nlp_engine.py", "process_text"),
        "anonymizer": ("anonymizer_engine.py", "anonymize"),
    },
}


def _shares(profile: cProfile.Profile, watch: dict[str, tuple[str, str]]) -> dict[str, float]:
    # {(file, line, func): (cc, nc, tt, ct, callers)}
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for label, (file_end, func) in watch.items():
        cumulative[label] = sum(
            row[3]
            for (file, _, name), row in stats.items()
            if file.endswith(file_end) and name == func
        )
    total = max(cumulative.values()) or 1.0
    return {label: round(100 * t / total, 1) for label, t in cumulative.items()}


def run(*, decisions: int = 3000, redactions: int = 50) -> dict[str, Any]:
    loaded = load_policy(Path("policies/contact-center"), Path("prompts"))
    engine = fake_engine(loaded)

    async def decide(n: int) -> None:
        for i in range(n):
            await engine.decide(DecisionRequest(message=MESSAGES[i % len(MESSAGES)]))

    asyncio.run(decide(200))
    engine_profile = cProfile.Profile()
    engine_profile.runcall(asyncio.run, decide(decisions))

    from engine.pii.presidio import PresidioRedactor

    redactor = PresidioRedactor(loaded.policy.redaction)
    text = (PII_MESSAGE * 5)[:1000]
    for _ in range(5):
        redactor.redact(text)
    redaction_profile = cProfile.Profile()
    for _ in range(redactions):
        redaction_profile.runcall(redactor.redact, text)

    results = {
        "engine_share_pct": _shares(engine_profile, WATCH["engine"]),
        "redaction_share_pct": _shares(redaction_profile, WATCH["redaction"]),
    }
    rows: list[list[Any]] = [["where", "share of total (%)"]]
    for key in ("engine_share_pct", "redaction_share_pct"):
        rows += [[label, share] for label, share in results[key].items()]
    emit("profile", results, rows)
    return results
