"""Protects the model from spikes and the caller from a sick model.

Bounded concurrency towards the model, a bounded number of waiters, a wait that never outlives
the policy's deadline, no new model work while the process itself is saturated (when a
saturation signal is given), and a circuit breaker that stops calling a model that keeps failing.
Everything it refuses becomes a rules-only decision (or a 429/503, as the policy says): never
an unbounded queue, never a 5xx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from engine.backends.base import LabelChoice, LabelVerdict, LLMBackend, RenderedPrompt
from engine.categories import VerdictStatus


class CircuitBreaker:
    """Opens after ``failures`` consecutive model failures; one trial call after ``cooldown_s``."""

    def __init__(
        self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = failures
        self._cooldown = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self._cooldown else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def record(self, ok: bool) -> None:
        if ok:
            self._failures, self._opened_at, self._trial = 0, None, False
            return
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._limit:
            self._opened_at, self._trial = self._clock(), False


class ModelGuard:
    """Admission control in front of a backend; itself an ``LLMBackend``."""

    def __init__(
        self,
        backend: LLMBackend,
        *,
        concurrency: int,
        queue: int,
        breaker: CircuitBreaker,
        saturated: Callable[[], bool] = lambda: False,
    ) -> None:
        self.backend = backend
        self.breaker = breaker
        self._saturated = saturated  # e.g. event-loop lag over its limit (service/loop_lag.py)
        self._slots = asyncio.Semaphore(concurrency)
        self._capacity = concurrency + queue
        self.admitted = 0  # inside: waiting or calling
        self.calling = 0

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def model_digest(self) -> str:
        return self.backend.model_digest

    @property
    def waiting(self) -> int:
        return self.admitted - self.calling

    def has_capacity(self) -> bool:
        return self.admitted < self._capacity and not self._saturated()

    def overload_reason(self) -> str:
        """Why ``has_capacity`` said no, for the decision record."""
        if self.admitted >= self._capacity:
            return "overloaded: model queue full"
        return "overloaded: process saturated (event loop lagging)"

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        if not self.breaker.allow():
            return LabelVerdict.failed(VerdictStatus.SKIPPED, "circuit open: model failing")
        if not self.has_capacity():
            return LabelVerdict.failed(VerdictStatus.SKIPPED, self.overload_reason())
        started = time.perf_counter()
        self.admitted += 1
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=deadline_s)
            except asyncio.TimeoutError:
                return LabelVerdict.failed(
                    VerdictStatus.TIMEOUT,
                    f"waited {deadline_s:.2f}s for a model slot",
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            self.calling += 1
            try:
                remaining = max(deadline_s - (time.perf_counter() - started), 0.001)
                verdict = await self.backend.score(prompt, choices, deadline_s=remaining)
            finally:
                self.calling -= 1
                self._slots.release()
        finally:
            self.admitted -= 1
        self.breaker.record(verdict.status not in (VerdictStatus.ERROR, VerdictStatus.TIMEOUT))
        # The wait for a slot is model time too: engine_ms must stay the engine's own work.
        return replace(verdict, latency_ms=(time.perf_counter() - started) * 1000)

    async def probe(self) -> bool:
        return await self.backend.probe()

    async def aclose(self) -> None:
        await self.backend.aclose()
