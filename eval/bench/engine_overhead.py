"""Engine overhead: everything but redaction and the model call, with a zero-latency fake model.

Measures ``Engine.decide`` wall time minus the model's reported time for the default policy and
for a generated 200-rule policy; then redaction alone (Presidio) for short clean messages and
1,000-character messages full of PII; and ``record.timings.engine_ms`` (what the record says
the engine cost) over the 280-message traffic mix (``traffic_mix``), with no redactor and with
the repository policy's Presidio redactor.
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

from engine import DecisionRequest
from engine.backends.fake import FakeBackend, Scripted
from engine.categories import CATEGORIES, Category, Channel
from engine.decide.engine import Engine
from engine.decide.rules import RulesCache
from engine.policy.loader import LoadedPolicy, load_policy
from eval.bench.messages import MESSAGES
from eval.bench.report import emit, summary
from eval.bench.traffic_mix import traffic_mix

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


def _mix_engine_ms(loaded: LoadedPolicy, *, presidio: bool, passes: int) -> list[float]:
    """``record.timings.engine_ms`` over the 280-message traffic mix, ``passes`` times."""
    redactor_factory = None
    if presidio:
        from engine.pii.presidio import PresidioRedactor

        redactor_factory = PresidioRedactor
    engine = Engine.build(
        loaded,
        FakeBackend(default=Scripted.label(Category.SERVICE_ACTION, 0.7)),
        rules_cache=RulesCache(),
        redactor_factory=redactor_factory,
    )
    mix = [DecisionRequest(message=m.text, channel=m.channel) for m in traffic_mix()]

    async def decide_all(rounds: int) -> list[float]:
        samples: list[float] = []
        for _ in range(rounds):
            for request in mix:
                samples.append((await engine.decide(request)).timings.engine_ms)
        return samples

    async def measure() -> list[float]:
        await decide_all(1)  # warm caches, the allocator and Presidio's pipeline
        gc.collect()
        return await decide_all(passes)

    return asyncio.run(measure())


def _redaction(n: int) -> dict[str, dict[str, float]]:
    from engine.pii.presidio import PresidioRedactor

    policy = load_policy(Path("policies/contact-center"), Path("prompts")).policy
    redactor = PresidioRedactor(policy.redaction)
    # The same policy with its phone search narrowed to two regions (redaction.phone_regions):
    # the phone matcher scans the text once per region and dominates long messages.
    narrowed = PresidioRedactor(policy.redaction.model_copy(update={"phone_regions": ["US", "GB"]}))
    long_pii = (PII_MESSAGE * 5)[:1000]  # PII_MESSAGE (243 characters) four times over
    # About 1,500 characters without PII: the pre-scan clears it without running Presidio.
    long_clean = (
        "Hello, I ordered the blood pressure tablets last week and the parcel still has not "
        "arrived. The tracking page says it left the warehouse but nothing has changed since. "
        "Could you check what happened and tell me when I can expect it? I take these every "
        "morning, so I only have a few days left. If it is lost, please send a replacement or let "
        "me pick it up at the pharmacy near my office instead. I also wanted to ask whether I can "
        "take them with grapefruit juice, because my doctor mentioned something about that but I "
        "forgot the details. Thank you for your help, and sorry for the long message. "
    ) * 3
    long_clean = long_clean[:1500]
    # The same length with an order number and a date in it: four digits in a row might be a
    # German phone number, so the pre-scan lets the phone recognizer (only) run.
    long_with_numbers = long_clean[:1400] + " Order 4471, placed on 2024-03-15, for 2 boxes."
    out = {}
    for name, r, text in (
        ("short_clean", redactor, "Where is my order? It has been a week."),
        (f"clean_{len(long_clean)}_chars", redactor, long_clean),
        (f"clean_{len(long_with_numbers)}_chars_with_an_order_number", redactor, long_with_numbers),
        ("pii_243_chars", redactor, PII_MESSAGE),
        ("pii_1000_chars", redactor, long_pii),
        ("pii_1000_chars_phone_regions_US_GB", narrowed, long_pii),
    ):
        for _ in range(10):  # per-text lazy state (regex caches) out of the samples
            r.redact(text)
        gc.collect()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            r.redact(text)
            samples.append(time.perf_counter() - started)
        out[name] = summary(samples, scale=1000, digits=2)
    return out


def run(*, n: int = 5000, redaction_n: int = 300, mix_passes: int = 5) -> dict[str, Any]:
    policies, prompts = Path("policies"), Path("prompts")
    default = load_policy(policies / "contact-center", prompts)
    mix_ms = {
        f"no_redactor_x{mix_passes}": summary(
            _mix_engine_ms(default, presidio=False, passes=mix_passes), digits=3
        ),
        f"presidio_x{mix_passes}": summary(
            _mix_engine_ms(default, presidio=True, passes=mix_passes), digits=3
        ),
    }
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
        "traffic_mix_engine_ms": mix_ms,
    }
    rows: list[list[Any]] = [["what", "p50", "p90", "p99", "n"]]
    for name, s in results["engine_overhead_us"].items():
        rows.append([f"engine overhead, {name} (µs)", s["p50"], s["p90"], s["p99"], s["n"]])
    for name, s in results["redaction_ms"].items():
        rows.append([f"redaction, {name} (ms)", s["p50"], s["p90"], s["p99"], s["n"]])
    for name, s in mix_ms.items():
        rows.append([f"engine_ms, 280-message mix, {name}", s["p50"], s["p90"], s["p99"], s["n"]])
    emit("engine_overhead", results, rows)
    return results
