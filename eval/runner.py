"""Runs labelled cases through the real engine, built the way the service builds it.

Same policy loader, same Presidio redactor, same backend registry, same pricing model. Nothing is
handed off: the engine only returns hand-offs as data, and nothing here stores or delivers them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from engine import DecisionRequest
from engine.backends.base import LLMBackend
from engine.backends.registry import BackendSettings, build_backend
from engine.decide.engine import Engine, Pricing
from engine.decide.rules import RulesCache
from engine.errors import PolicyNotFoundError
from engine.pii.base import Redactor
from engine.policy.loader import LoadedPolicy, load_catalog
from engine.policy.model import Redaction
from eval.dataset import LabelledCase
from eval.predictions import Prediction

# Prices match the service's defaults (service/settings.py) so offline cost equals online cost.
DEFAULT_USD_PER_1K_PROMPT = Pricing.usd_per_1k_prompt_tokens
DEFAULT_USD_PER_1K_OUTPUT = Pricing.usd_per_1k_output_tokens


@dataclass(frozen=True)
class RunSettings:
    """Where the policy comes from and how the engine is built."""

    policies: Path
    prompts: Path
    policy_id: str | None = None
    backend: str = "embedded"
    usd_per_1k_prompt: float = DEFAULT_USD_PER_1K_PROMPT
    usd_per_1k_output: float = DEFAULT_USD_PER_1K_OUTPUT
    deadline_s: float | None = None  # None: the policy's own model deadline, as online
    redact: bool = True


def load_policy_by_id(policies: Path, prompts: Path, policy_id: str | None) -> LoadedPolicy:
    catalog = load_catalog(policies, prompts)
    chosen = policy_id or next(iter(catalog))
    if chosen not in catalog:
        raise PolicyNotFoundError(chosen, sorted(catalog))
    return catalog[chosen]


def presidio(redaction: Redaction) -> Redactor:
    from engine.pii.presidio import PresidioRedactor

    return PresidioRedactor(redaction)


def build_engine(
    loaded: LoadedPolicy,
    backend: LLMBackend,
    settings: RunSettings,
    *,
    redactor: Redactor | None = None,
) -> Engine:
    return Engine.build(
        loaded,
        backend,
        rules_cache=RulesCache(),
        redactor_factory=(lambda _: redactor)
        if redactor is not None
        else (presidio if settings.redact else None),
        pricing=Pricing(settings.usd_per_1k_prompt, settings.usd_per_1k_output),
    )


class Progress:
    """A one-line progress bar on stderr: done/total, rate and time left."""

    def __init__(self, total: int, stream: TextIO | None = None, label: str = "eval") -> None:
        self.total = total
        self.done = 0
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()

    def step(self, note: str = "") -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.1f}/s "
            f"eta {left:4.0f}s {note[:24]:<24}"
        )
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


async def decide_all(
    engine: Engine,
    cases: Sequence[LabelledCase],
    *,
    deadline_s: float | None = None,
    on_step: Callable[[Prediction], None] | None = None,
) -> list[Prediction]:
    """Decide every case in order, one at a time (the embedded model serialises anyway)."""
    rows: list[Prediction] = []
    for case in cases:
        record = await engine.decide(
            DecisionRequest(message=case.text, channel=case.channel, decision_id=case.case_id),
            deadline_s=deadline_s,
        )
        row = Prediction.from_record(case, record)
        rows.append(row)
        if on_step is not None:
            on_step(row)
    return rows


async def run_cases(
    cases: Sequence[LabelledCase], settings: RunSettings, *, progress: bool = True
) -> tuple[list[Prediction], Engine]:
    """Build the engine and backend, warm up, decide every case; the backend is closed after."""
    loaded = load_policy_by_id(settings.policies, settings.prompts, settings.policy_id)
    backend = build_backend(BackendSettings.from_env(settings.backend))
    try:
        engine = build_engine(loaded, backend, settings)
        await engine.warm_up()
        bar = Progress(len(cases)) if progress else None
        rows = await decide_all(
            engine,
            cases,
            deadline_s=settings.deadline_s,
            on_step=(lambda row: bar.step(row.id)) if bar is not None else None,
        )
    finally:
        await backend.aclose()
    return rows, engine
