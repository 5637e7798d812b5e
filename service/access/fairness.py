"""Per-tenant fairness: a token bucket for the request rate, a cap on model slots held at once.

``Admission`` asks these before anything else, so one tenant's spike is refused at its own limit
and cannot take the model slots another tenant is entitled to.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.access.tenants import Tenant


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per request."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


@dataclass(frozen=True)
class TenantLimit:
    """Why a tenant was refused: its own limit, named in the 429."""

    retry_after_s: int
    detail: str


class TenantFairness:
    """Buckets and model-slot counts per tenant; rebuilt for a tenant whose limits changed."""

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._buckets: dict[str, tuple[Tenant, TokenBucket]] = {}
        self.holding: dict[str, int] = {}

    def over_rate(self, tenant: Tenant) -> TenantLimit | None:
        held = self._buckets.get(tenant.id)
        # Identity first: the same Tenant object every request until a reload, and comparing
        # two pydantic models field by field costs more than the bucket.
        if held is None or (held[0] is not tenant and held[0] != tenant):
            held = (tenant, TokenBucket(tenant.rate_per_s, tenant.burst, self._clock))
            self._buckets[tenant.id] = held
        wait = held[1].take()
        if wait == 0:
            return None
        return TenantLimit(
            max(1, math.ceil(wait)),
            f"tenant {tenant.id} is over its limit of {tenant.rate_per_s:g} requests/s "
            f"(burst {tenant.burst})",
        )

    def slots_for(self, tenant: Tenant) -> int:
        return max(1, math.floor(tenant.model_share * self.capacity))

    def over_share(self, tenant: Tenant) -> bool:
        """Whether the tenant holds all its slots; a tenant with every slot has no cap of its own
        (the process's capacity, checked before this, is its limit)."""
        slots = self.slots_for(tenant)
        return slots < self.capacity and self.holding.get(tenant.id, 0) >= slots

    def hold(self, tenant_id: str) -> None:
        self.holding[tenant_id] = self.holding.get(tenant_id, 0) + 1

    def release(self, tenant_id: str) -> None:
        self.holding[tenant_id] -= 1
