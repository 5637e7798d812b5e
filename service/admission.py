"""Admission: for each decision, one answer (call the model, decide rules-only, or refuse).

Decided here and nowhere else, from the model guard's capacity, the process's saturation signal,
the circuit breaker and the policy's ``fallbacks.overload`` setting:

1. No capacity (model queue full, or the event loop lagging when that limit is on): the policy's
   overload mode says refuse (429/503 with Retry-After) or decide rules-only.
2. Circuit open (the model keeps failing): rules-only.
3. Otherwise: the model.

``OverloadShedding`` (pure ASGI, outermost) asks before the body is parsed, for the case where
every loaded policy would refuse alike; the ``/classify`` route asks for its request's policy.
The engine receives the answer as data (``Engine.decide(..., skip_model=reason)``).
``ModelGuard`` is the backend wrapper that enforces the capacity it reports: bounded concurrency,
a wait that never outlives the deadline, and the breaker's bookkeeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from engine import Engine
from engine.backends.base import (
    LabelChoice,
    LabelVerdict,
    LLMBackend,
    RenderedPrompt,
    TokenCounter,
)
from engine.categories import VerdictStatus
from engine.policy.fallbacks import Overload, OverloadMode
from service.access.fairness import TenantFairness
from service.access.tenants import Tenant
from service.middleware import send_problem

CLASSIFY_PATH = "/classify"
OVER_CAPACITY = ("Over capacity", "Retry later.")
"""Title and detail of every overload refusal, early in the middleware or late in the route."""


class CircuitBreaker:
    """Opens after ``failures`` consecutive model failures; one trial call per ``cooldown_s``.

    A trial that is granted but never reported (the request did not reach the model after all)
    expires after another cooldown, so the breaker cannot stay half-open forever.
    """

    def __init__(
        self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = failures
        self._cooldown = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self._cooldown else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        now = self._clock()
        if state == "half_open" and (
            self._trial_at is None or now - self._trial_at >= self._cooldown
        ):
            self._trial_at = now
            return True
        return False

    def record(self, ok: bool) -> None:
        if ok:
            self._failures, self._opened_at, self._trial_at = 0, None, None
            return
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._limit:
            self._opened_at, self._trial_at = self._clock(), None


class ModelGuard:
    """The backend the engines call: bounded concurrency and waiting, breaker bookkeeping.

    It never decides whether to call the model (``Admission`` does); it counts who is inside so
    ``Admission`` can see the capacity left.
    """

    def __init__(
        self, backend: LLMBackend, *, concurrency: int, queue: int, breaker: CircuitBreaker
    ) -> None:
        self.backend = backend
        self._count = backend.count_tokens if isinstance(backend, TokenCounter) else None
        self.breaker = breaker
        self._slots = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self.capacity = concurrency + queue
        self.admitted = 0  # inside: waiting or calling
        self.calling = 0
        self.calls = 0  # calls handed to the backend (live, shadow and warm-up alike)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def model_digest(self) -> str:
        return self.backend.model_digest

    def count_tokens(self, text: str) -> int | None:
        """``TokenCounter``: the guarded backend's count, so the engines it serves bound what the
        model reads in tokens (``prompt.model_input.max_tokens``); None when it cannot count."""
        return self._count(text) if self._count is not None else None

    @property
    def waiting(self) -> int:
        return self.admitted - self.calling

    def slot_free(self) -> bool:
        """A model slot is free and nobody waits: a call now holds up no one already here."""
        return self.admitted < self.concurrency

    async def score(
        self, prompt: RenderedPrompt, choices: Sequence[LabelChoice], *, deadline_s: float
    ) -> LabelVerdict:
        started = time.perf_counter()
        self.admitted += 1
        try:
            if not self._slots.locked():
                # A free slot is taken at once: no need for wait_for's task and timer.
                await self._slots.acquire()
            else:
                try:
                    await asyncio.wait_for(self._slots.acquire(), timeout=deadline_s)
                except asyncio.TimeoutError:
                    return LabelVerdict.failed(
                        VerdictStatus.TIMEOUT,
                        f"waited {deadline_s:.2f}s for a model slot",
                        latency_ms=(time.perf_counter() - started) * 1000,
                    )
            self.calling += 1
            self.calls += 1
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


@dataclass(frozen=True)
class Refuse:
    """Answer with ``status`` and ``Retry-After``; nothing is decided or recorded."""

    status: int
    retry_after_s: int
    title: str = OVER_CAPACITY[0]
    detail: str = OVER_CAPACITY[1]


@dataclass(frozen=True)
class Admit:
    """Decide; ``skip_model`` is why the model is not called (None: call it).

    ``holder`` is the tenant holding one of its model slots until ``Admission.release``.
    """

    skip_model: str | None = None
    holder: str | None = None


MODEL = Admit()


class Admission:
    """The one place that says model, rules-only or refuse for a decision."""

    def __init__(
        self,
        guard: ModelGuard,
        *,
        saturated: Callable[[], bool] = lambda: False,
        shed: Counter | None = None,
        fairness: TenantFairness | None = None,
    ) -> None:
        self.guard = guard
        self._saturated = saturated  # e.g. event-loop lag over its limit (service/loop_lag.py)
        self._shed = shed
        self._shared: tuple[object, Refuse | None] | None = None
        self.fairness = fairness or TenantFairness(guard.capacity)

    def has_capacity(self) -> bool:
        return self.guard.admitted < self.guard.capacity and not self._saturated()

    def _overload_reason(self) -> str:
        if self.guard.admitted >= self.guard.capacity:
            return "overloaded: model queue full"
        return "overloaded: process saturated (event loop lagging)"

    def _count(self, action: str) -> None:
        if self._shed is not None:
            self._shed.labels(action).inc()

    def admit(self, overload: Overload, tenant: Tenant | None = None) -> Admit | Refuse:
        """The answer for one request under its policy's overload setting.

        With a ``tenant``: first its own rate (429 naming its limit), then the process's
        capacity as without one, then its share of the model slots (full: the policy's overload
        mode for that tenant alone). Call ``release`` with an ``Admit`` once the decision is made.
        """
        if tenant is None:
            return self._admit(overload)
        limited = self.fairness.over_rate(tenant)
        if limited is not None:
            self._count("tenant_limit")
            return Refuse(429, limited.retry_after_s, "Rate limit exceeded", limited.detail)
        admitted = self._admit(overload)
        if admitted != MODEL:
            return admitted
        if self.fairness.over_share(tenant):
            share = self.fairness.slots_for(tenant)
            if overload.mode is OverloadMode.REJECT:
                self._count("rejected")
                return Refuse(
                    overload.status_code,
                    overload.retry_after_s,
                    OVER_CAPACITY[0],
                    f"tenant {tenant.id} holds all {share} of its model slots",
                )
            self._count("degraded")
            return Admit(f"overloaded: tenant {tenant.id} holds all {share} of its model slots")
        self.fairness.hold(tenant.id)
        return Admit(None, tenant.id)

    def release(self, admitted: Admit) -> None:
        if admitted.holder is not None:
            self.fairness.release(admitted.holder)

    def _admit(self, overload: Overload) -> Admit | Refuse:
        if not self.has_capacity():
            if overload.mode is OverloadMode.REJECT:
                self._count("rejected")
                return Refuse(overload.status_code, overload.retry_after_s)
            self._count("degraded")
            return Admit(self._overload_reason())
        if not self.guard.breaker.allow():
            return Admit("circuit open: model failing")
        return MODEL

    def refuse_early(self, engines: Sequence[Engine]) -> Refuse | None:
        """A refusal that holds whatever the request says, or None (then ask ``admit``).

        Only when there is no capacity and every loaded policy refuses overload alike.
        """
        if self.has_capacity():
            return None
        if self._shared is None or self._shared[0] is not engines:
            self._shared = (engines, _shared_refusal(engines))
        refusal = self._shared[1]
        if refusal is not None:
            self._count("rejected")
        return refusal


def _shared_refusal(engines: Sequence[Engine]) -> Refuse | None:
    answers = {
        (o.mode, o.status_code, o.retry_after_s)
        for o in (e.policy.fallbacks.overload for e in engines)
    }
    if len(answers) != 1:
        return None
    ((mode, status, retry_after),) = answers
    return Refuse(status, retry_after) if mode is OverloadMode.REJECT else None


class OverloadShedding:
    """Pure ASGI: refuses ``POST /classify`` before FastAPI parses the body, when it can.

    A refusal then costs the HTTP parse only, so a 10x spike cannot starve the admitted requests.
    In every other case it steps aside and the route asks ``Admission`` as usual.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == CLASSIFY_PATH
            and await _shed(scope, receive, send)
        ):
            return
        await self.app(scope, receive, send)


async def _shed(scope: Scope, receive: Receive, send: Send) -> bool:
    state: Any = getattr(scope["app"].state, "switchboard", None)
    engines = state.holder.active if state is not None else None
    if engines is None:
        return False
    refusal = state.admission.refuse_early(engines.all)
    if refusal is None:
        return False
    # Drain the body (already buffered for a normal request) so the connection stays usable.
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        more = message.get("more_body", False)
    headers = [(b"retry-after", str(refusal.retry_after_s).encode())]
    await send_problem(send, refusal.status, *OVER_CAPACITY, headers)
    return True
