"""Admission: model, rules-only or refuse, from capacity, saturation, the circuit and the policy."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from engine import DecisionRequest, Engine, LoadedPolicy, RulesCache, load_policy
from engine.backends.base import ChatMessage, LabelChoice, RenderedPrompt
from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category, VerdictStatus
from engine.policy.fallbacks import Overload, OverloadMode
from service.admission import Admission, Admit, CircuitBreaker, ModelGuard, Refuse
from service.loop_lag import LoopLagMonitor
from tests.conftest import DEFAULT_POLICY, LIVE_PROMPTS, POLICIES, PROMPTS

CHOICES = [LabelChoice(c, c.value[:4]) for c in Category]
PROMPT = RenderedPrompt(messages=(ChatMessage("user", "hello"),), template_hash="test")
DEGRADE = Overload(mode=OverloadMode.DEGRADE)
REJECT = Overload(mode=OverloadMode.REJECT, status_code=429, retry_after_s=7)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _admission(
    *, saturated: bool = False, queue: int = 4, breaker: CircuitBreaker | None = None
) -> tuple[Admission, ModelGuard, FakeBackend]:
    backend = FakeBackend(default=Scripted.label(Category.INFORMATIONAL, 0.9))
    guard = ModelGuard(
        backend, concurrency=1, queue=queue, breaker=breaker or CircuitBreaker(5, 10)
    )
    return Admission(guard, saturated=lambda: saturated), guard, backend


def test_a_saturated_process_takes_no_new_model_work() -> None:
    admission, _, _ = _admission(saturated=True)
    answer = admission.admit(DEGRADE)
    assert isinstance(answer, Admit)
    assert "event loop" in (answer.skip_model or "")
    assert admission.admit(REJECT) == Refuse(429, 7)


def test_with_capacity_the_model_is_called() -> None:
    admission, guard, backend = _admission()
    assert admission.admit(REJECT) == Admit(skip_model=None)
    verdict = asyncio.run(guard.score(PROMPT, CHOICES, deadline_s=1))
    assert verdict.status is VerdictStatus.OK
    assert len(backend.calls) == 1


def test_a_full_model_queue_follows_the_policy() -> None:
    admission, guard, _ = _admission(queue=0)
    guard.admitted = guard.capacity  # one decision inside the model, nobody may wait
    assert admission.admit(REJECT) == Refuse(429, 7)
    degraded = admission.admit(DEGRADE)
    assert isinstance(degraded, Admit)
    assert degraded.skip_model == "overloaded: model queue full"


def test_an_open_circuit_decides_rules_only_and_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10, clock=clock)
    admission, _, _ = _admission(breaker=breaker)
    breaker.record(ok=False)
    breaker.record(ok=False)
    answer = admission.admit(REJECT)  # a sick model is not overload: never refused for it
    assert isinstance(answer, Admit)
    assert answer.skip_model == "circuit open: model failing"
    clock.now = 10.0
    assert admission.admit(DEGRADE) == Admit(None)  # the half-open trial
    assert admission.admit(DEGRADE) != Admit(None)  # only one at a time
    clock.now = 20.0  # the trial never reported back (its message was rejected, say)
    assert admission.admit(DEGRADE) == Admit(None)
    breaker.record(ok=True)
    assert breaker.state == "closed"


def test_early_refusal_only_when_every_policy_refuses_alike(loaded: LoadedPolicy) -> None:
    admission, guard, _ = _admission(queue=0)
    reject = _engine_with(loaded, REJECT)
    assert admission.refuse_early((reject,)) is None  # capacity left: never refuse early
    guard.admitted = guard.capacity
    assert admission.refuse_early((reject,)) == Refuse(429, 7)
    assert admission.refuse_early((reject, _engine_with(loaded, DEGRADE))) is None


@pytest.fixture(scope="module")
def loaded() -> LoadedPolicy:
    return load_policy(DEFAULT_POLICY, PROMPTS)


def _engine_with(loaded: LoadedPolicy, overload: Overload) -> Engine:
    fallbacks = loaded.policy.fallbacks.model_copy(update={"overload": overload})
    policy = loaded.policy.model_copy(update={"fallbacks": fallbacks})
    return Engine.build(replace(loaded, policy=policy), FakeBackend(), rules_cache=_RULES)


_RULES = RulesCache()


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


class _CountingBackend(FakeBackend):
    """The fake model with a tokenizer (a token a byte), as the embedded backend has one."""

    def count_tokens(self, text: str) -> int:
        return len(text.encode())


def test_engines_behind_the_guard_bound_tokens_with_the_models_own_count() -> None:
    """The service builds its engines on the guard, not the backend: the guard passes the
    backend's token count through, or says it has none."""
    loaded = load_policy(POLICIES / "contact-center", LIVE_PROMPTS)  # the shipped bound
    hindi = "मेरे बेटे के होंठ सूज गए। " * 70
    seen: dict[str, str] = {}
    for name, backend in (("counts", _CountingBackend()), ("cannot", FakeBackend())):
        backend.default = Scripted.label(Category.SAFETY_COMPLIANCE)
        guard = ModelGuard(backend, concurrency=1, queue=1, breaker=CircuitBreaker(5, 10))
        engine = Engine.build(loaded, guard, rules_cache=RulesCache())
        asyncio.run(engine.decide(DecisionRequest(hindi[:2000])))
        seen[name] = backend.calls[-1].messages[-1].content
    assert (
        ModelGuard(
            FakeBackend(), concurrency=1, queue=1, breaker=CircuitBreaker(5, 10)
        ).count_tokens("x")
        is None
    )
    assert len(seen["counts"].encode()) < len(seen["cannot"].encode())
    assert "होंठ" in seen["counts"]
