"""The model guard's saturation signal and the event-loop lag monitor behind it."""

from __future__ import annotations

import asyncio
import time

from engine.backends.base import ChatMessage, LabelChoice, RenderedPrompt
from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, VerdictStatus
from service.guard import CircuitBreaker, ModelGuard
from service.loop_lag import LoopLagMonitor

CHOICES = [LabelChoice(c, c.value[:4]) for c in Category]
PROMPT = RenderedPrompt(messages=(ChatMessage("user", "hello"),), template_hash="test")


def _guard(saturated: bool) -> tuple[ModelGuard, FakeBackend]:
    backend = FakeBackend(default=Scripted.label(Category.INFORMATIONAL, 0.9))
    guard = ModelGuard(
        backend,
        concurrency=4,
        queue=4,
        breaker=CircuitBreaker(5, 10),
        saturated=lambda: saturated,
    )
    return guard, backend


def test_a_saturated_process_takes_no_new_model_work() -> None:
    guard, backend = _guard(saturated=True)
    assert not guard.has_capacity()
    assert "event loop" in guard.overload_reason()
    verdict = asyncio.run(guard.score(PROMPT, CHOICES, deadline_s=1))
    assert verdict.status is VerdictStatus.SKIPPED
    assert "event loop" in (verdict.error or "")
    assert not backend.calls


def test_an_unsaturated_guard_calls_the_model() -> None:
    guard, backend = _guard(saturated=False)
    assert guard.has_capacity()
    verdict = asyncio.run(guard.score(PROMPT, CHOICES, deadline_s=1))
    assert verdict.status is VerdictStatus.OK
    assert len(backend.calls) == 1


def test_lag_average_follows_lateness() -> None:
    seen: list[float] = []
    monitor = LoopLagMonitor(alpha=0.5, on_sample=seen.append)
    monitor.observe(0.040)
    assert monitor.lag_ms == 20.0
    monitor.observe(0.040)
    assert monitor.lag_ms == 30.0
    monitor.observe(-0.001)  # early wake-ups count as on time
    assert monitor.lag_ms == 15.0
    assert seen == [0.020, 0.030, 0.015]


def test_monitor_sees_a_blocked_loop_and_then_its_recovery() -> None:
    async def main() -> tuple[float, float, float]:
        monitor = LoopLagMonitor(interval_s=0.005)
        monitor.start()
        await asyncio.sleep(0.3)
        idle = monitor.lag_ms
        for _ in range(4):
            time.sleep(0.08)  # the monitor's wake-up is now ~75 ms overdue
            await asyncio.sleep(0.001)  # it runs (overdue timers first), then we block again
        blocked = monitor.lag_ms
        await asyncio.sleep(0.5)
        recovered = monitor.lag_ms
        await monitor.stop()
        return idle, blocked, recovered

    idle, blocked, recovered = asyncio.run(main())
    assert blocked > 15, (idle, blocked)
    assert blocked > idle + 10, (idle, blocked)
    assert recovered < blocked / 2, (blocked, recovered)
