"""Fairness admission: each tenant's own token bucket and share of the model slots.

A scripted clock drives the buckets (no wall clock); the end-to-end numbers under load come from
``python -m eval.bench fairness``.
"""

from __future__ import annotations

from typing import Any

from engine.backends.fake import FakeBackend, Scripted
from engine.categories import Category
from engine.policy.fallbacks import Overload, OverloadMode
from service.access.fairness import TenantFairness, TokenBucket
from service.access.tenants import Tenant
from service.admission import Admission, Admit, CircuitBreaker, ModelGuard, Refuse

DEGRADE = Overload(mode=OverloadMode.DEGRADE)
REJECT = Overload(mode=OverloadMode.REJECT, status_code=503, retry_after_s=7)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tenant(tenant_id: str, **fields: Any) -> Tenant:
    values: dict[str, Any] = {
        "id": tenant_id,
        "region": "local",
        "policies": ["*"],
        "rate_per_s": 2,
        "burst": 2,
        **fields,
    }
    return Tenant.model_validate(values)


def admission(clock: Clock, *, concurrency: int = 2, queue: int = 2) -> Admission:
    backend = FakeBackend(default=Scripted.label(Category.INFORMATIONAL, 0.9))
    guard = ModelGuard(backend, concurrency=concurrency, queue=queue, breaker=CircuitBreaker(5, 10))
    return Admission(guard, fairness=TenantFairness(guard.capacity, clock))


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == 0.5  # one token comes back after 1/rate seconds
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 60  # an idle minute saves up the burst, no more
    assert [bucket.take(), bucket.take(), bucket.take() > 0] == [0.0, 0.0, True]


def test_over_its_rate_a_tenant_gets_429_naming_its_limit() -> None:
    clock = Clock()
    gate = admission(clock)
    a = tenant("a")
    for _ in range(2):
        answer = gate.admit(DEGRADE, a)
        assert isinstance(answer, Admit)
        gate.release(answer)
    refused = gate.admit(DEGRADE, a)  # the policy's degrade mode does not apply: it is a quota
    assert isinstance(refused, Refuse)
    assert (refused.status, refused.retry_after_s) == (429, 1)
    assert refused.detail == "tenant a is over its limit of 2 requests/s (burst 2)"
    clock.now += 0.5
    assert isinstance(gate.admit(DEGRADE, a), Admit)


def test_one_tenants_flood_leaves_another_tenants_bucket_alone() -> None:
    clock = Clock()
    gate = admission(clock)
    a, b = tenant("a"), tenant("b")
    answers = [gate.admit(DEGRADE, a) for _ in range(20)]
    assert sum(isinstance(x, Refuse) for x in answers) == 18
    for x in answers:
        if isinstance(x, Admit):
            gate.release(x)
    assert [gate.admit(DEGRADE, b) == Admit(None, "b") for _ in range(2)] == [True, True]


def test_a_tenant_holds_no_more_than_its_share_of_model_slots() -> None:
    gate = admission(Clock())  # capacity 4
    a = tenant("a", rate_per_s=100, burst=100, model_share=0.5)
    b = tenant("b", rate_per_s=100, burst=100, model_share=0.5)
    held = [gate.admit(REJECT, a), gate.admit(REJECT, a)]
    assert held == [Admit(None, "a"), Admit(None, "a")]
    assert isinstance(held[0], Admit)
    third = gate.admit(REJECT, a)
    assert isinstance(third, Refuse)
    assert third.status == 503
    assert third.detail == "tenant a holds all 2 of its model slots"
    degraded = gate.admit(DEGRADE, a)  # a degrade policy decides rules-only instead
    assert degraded == Admit("overloaded: tenant a holds all 2 of its model slots")
    assert gate.admit(REJECT, b) == Admit(None, "b")  # b's slots are still b's
    gate.release(held[0])
    assert gate.admit(REJECT, a) == Admit(None, "a")


def test_a_tenant_with_every_slot_meets_only_the_process_limit() -> None:
    gate = admission(Clock(), concurrency=1, queue=0)
    everything = tenant("dev", rate_per_s=100, burst=100, model_share=1.0)
    first = gate.admit(DEGRADE, everything)
    assert first == Admit(None, "dev")
    gate.guard.admitted = gate.guard.capacity  # the one slot is busy in the model guard
    assert gate.admit(DEGRADE, everything) == Admit("overloaded: model queue full")
