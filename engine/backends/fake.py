"""A scripted test double: verdicts you enqueue, latency you set, every call recorded.

For unit tests and load tests only; never used to report quality. When it runs out of scripted
verdicts and has no default, it answers an ``error`` verdict that says how to fix the test.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.backends.base import LabelChoice, LabelVerdict, RenderedPrompt, answer_probabilities
from engine.categories import Category, VerdictStatus


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: probabilities, or a failure status, or garbage output."""

    probabilities: Mapping[Category, float] = field(default_factory=dict)
    status: VerdictStatus = VerdictStatus.OK
    raw_output: str = ""
    latency_s: float | None = None
    hidden_state: npt.NDArray[np.float32] | None = None  # none unless a test scripts one
    answers: Mapping[str, float] = field(default_factory=dict)
    """Per-answer probabilities (sub-intents); when given, the label probabilities are their
    sums per category, as a real backend's are, and ``probabilities`` is ignored."""

    @classmethod
    def answering(cls, answers: Mapping[str, float]) -> Scripted:
        return cls(answers=answers)

    @classmethod
    def label(cls, category: Category, confidence: float = 0.9) -> Scripted:
        rest = (1.0 - confidence) / 2
        return cls({c: (confidence if c is category else rest) for c in Category})


class FakeBackend:
    name = "fake"
    model_id = "fake-scripted"
    model_digest = "none"

    def __init__(
        self,
        script: Sequence[Scripted] = (),
        *,
        default: Scripted | None = None,
        latency_s: float = 0.0,
        healthy: bool = True,
        keep_calls: int = 1000,
    ) -> None:
        self._script: deque[Scripted] = deque(script)
        self.default = default
        self.latency_s = latency_s
        self.healthy = healthy
        # The most recent prompts, for assertions; bounded so a long load test measures the
        # service, not this double's memory.
        self.calls: deque[RenderedPrompt] = deque(maxlen=keep_calls)

    def enqueue(self, *answers: Scripted) -> None:
        self._script.extend(answers)

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        start = time.perf_counter()
        self.calls.append(prompt)
        if self._script:
            answer = self._script.popleft()
        elif self.default is not None:
            answer = self.default
        else:
            return LabelVerdict.failed(
                VerdictStatus.ERROR,
                "FakeBackend has no scripted verdict left: call enqueue(Scripted(...)) or pass "
                "default=Scripted(...)",
            )
        latency = self.latency_s if answer.latency_s is None else answer.latency_s
        if latency > deadline_s:
            await asyncio.sleep(deadline_s)
            return LabelVerdict.failed(
                VerdictStatus.TIMEOUT,
                f"no answer within {deadline_s:.3f}s",
                latency_ms=(time.perf_counter() - start) * 1000,
            )
        if latency > 0:
            await asyncio.sleep(latency)
        elapsed = (time.perf_counter() - start) * 1000
        if answer.status is not VerdictStatus.OK:
            return LabelVerdict.failed(
                answer.status, f"scripted {answer.status.value}", latency_ms=elapsed
            )
        allowed = {c.category for c in choices}
        probabilities = {c: p for c, p in answer.probabilities.items() if c in allowed}
        answers: dict[str, float] = {}
        if answer.answers and any(answer.answers.get(c.answer, 0.0) > 0 for c in choices):
            # Mapped onto categories by the code real backends use.
            scores = [_log(answer.answers.get(c.answer, 0.0)) for c in choices]
            answers, probabilities = answer_probabilities(scores, choices)
        if not probabilities:
            return LabelVerdict(
                status=VerdictStatus.INVALID,
                raw_output=answer.raw_output or "<no label>",
                error="output did not name an allowed label",
                latency_ms=elapsed,
                method="scripted",
            )
        total = sum(probabilities.values()) or 1.0
        return LabelVerdict(
            status=VerdictStatus.OK,
            probabilities={c: p / total for c, p in probabilities.items()},
            answers=answers,
            raw_output=answer.raw_output,
            prompt_tokens=sum(len(m.content) // 4 for m in prompt.messages),
            output_tokens=1,
            latency_ms=elapsed,
            method="scripted",
            hidden_state=answer.hidden_state,
        )

    async def probe(self) -> bool:
        return self.healthy

    async def aclose(self) -> None:
        return None


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf
