"""Engine overhead: everything but redaction and the model call, with a zero-latency fake model.

Measures ``Engine.decide`` wall time minus the model's reported time for the default policy and
for a generated 200-rule policy; then redaction alone (Presidio) for short clean messages and
1,000-character messages full of PII.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import CATEGORIES, Category, Channel
from engine.decide.engine import DecisionRequest, Engine
from engine.decide.rules import RulesCache
from engine.decide.workflow import RecordingIntegrations
from engine.policy.loader import LoadedPolicy, load_policy
from eval.bench.messages import MESSAGES
from eval.bench.report import emit, summary

PII_MESSAGE = (
    "Hi, I'm writing about order 99812. You can reach me at jane.doe@example.com or "
    "+1 415-555-0100, or my husband at (415) 555 0199. Card used: 4111 1111 1111 1111, "
    "billing in the name on file. DOB 1980-02-17. Backup email j.doe@work.example.org. "
)


def with_many_rules(source: Path, count: int, work: Path) -> Path:
    """A copy of a policy with ``count`` rules in all (extra threshold/channel review rules)."""
    target = work / "policies" / source.name
    shutil.copytree(source, target)
    shutil.copytree(source.parent.parent / "prompts", work / "prompts", dirs_exist_ok=True)
    rules_file = target / "rules.yaml"
    data: dict[str, Any] = yaml.safe_load(rules_file.read_text("utf-8"))
    channels = [c.value for c in Channel]
    i = 0
    while len(data["rules"]) < count:
        category = CATEGORIES[i % 3].value
        data["rules"].append(
            {
                "id": f"generated-{i}",
                "reason": "Generated to measure the cost of a large policy.",
                "priority": 200 + i,
                "when": {
                    "llm_category": [category],
                    "channel": [channels[(i // 3) % 3]],
                    "confidence_below": round(0.3 + (i % 60) / 100, 2),
                },
                "then": {"requires_human_review": True},
            }
        )
        i += 1
    rules_file.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return target


def fake_engine(loaded: LoadedPolicy, probability: float = 0.7) -> Engine:
    """An engine on the fake backend at zero latency, always answering service_action."""
    return Engine.build(
        loaded,
        FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, probability)),
        rules_cache=RulesCache(),
        integrations=RecordingIntegrations(),
    )


async def _overhead(loaded: LoadedPolicy, n: int) -> tuple[list[float], int]:
    engine = fake_engine(loaded)
    for m in MESSAGES * 20:  # warm caches and the allocator
        await engine.decide(DecisionRequest(message=m))
    samples: list[float] = []
    gc.collect()
    for i in range(n):
        started = time.perf_counter()
        record = await engine.decide(DecisionRequest(message=MESSAGES[i % len(MESSAGES)]))
        elapsed = time.perf_counter() - started
        samples.append(elapsed - record.timings.llm_ms / 1000)
    return samples, engine.rules.rule_count


def _redaction(n: int) -> dict[str, dict[str, float]]:
    from engine.pii.presidio import PresidioRedactor

    policy = load_policy(Path("policies/contact-center"), Path("prompts")).policy
    redactor = PresidioRedactor(policy.redaction)
    # The same policy with its phone search narrowed to two regions (redaction.phone_regions):
    # the phone matcher scans the text once per region and dominates long messages.
    narrowed = PresidioRedactor(policy.redaction.model_copy(update={"phone_regions": ["US", "GB"]}))
    long_pii = (PII_MESSAGE * 5)[:1000]
    out = {}
    for name, r, text in (
        ("short_clean", redactor, "Where is my order? It has been a week."),
        ("pii_1000_chars", redactor, long_pii),
        ("pii_1000_chars_phone_regions_US_GB", narrowed, long_pii),
    ):
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            r.redact(text)
            samples.append(time.perf_counter() - started)
        out[name] = summary(samples, scale=1000, digits=2)
    return out


def run(*, n: int = 5000, redaction_n: int = 300) -> dict[str, Any]:
    policies, prompts = Path("policies"), Path("prompts")
    default = load_policy(policies / "contact-center", prompts)
    with tempfile.TemporaryDirectory() as tmp:
        big_dir = with_many_rules(policies / "contact-center", 200, Path(tmp))
        big = load_policy(big_dir, Path(tmp) / "prompts")
        default_samples, default_rules = asyncio.run(_overhead(default, n))
        big_samples, big_rules = asyncio.run(_overhead(big, n))
    results: dict[str, Any] = {
        "engine_overhead_us": {
            f"default_{default_rules}_rules": summary(default_samples, scale=1e6),
            f"generated_{big_rules}_rules": summary(big_samples, scale=1e6),
        },
        "redaction_ms": _redaction(redaction_n),
    }
    rows: list[list[Any]] = [["what", "p50", "p90", "p99", "n"]]
    for name, s in results["engine_overhead_us"].items():
        rows.append([f"engine overhead, {name} (µs)", s["p50"], s["p90"], s["p99"], s["n"]])
    for name, s in results["redaction_ms"].items():
        rows.append([f"redaction, {name} (ms)", s["p50"], s["p90"], s["p99"], s["n"]])
    emit("engine_overhead", results, rows)
    return results
