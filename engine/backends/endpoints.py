"""A pool of model endpoints: health-checked round-robin with ejection of failing ones.

Each replica keeps its own view of the pool. A call goes to the next endpoint in turn that is
not ejected; an endpoint that fails (cannot connect, times out, answers 5xx) is ejected for
``eject_s`` and the call moves on to the next one while its deadline allows. The readiness
probe (``EndpointPool.check``) brings endpoints back as soon as they answer again. When every
endpoint is ejected the one ejected longest ago is tried anyway, so a pool never refuses work
only because of stale bookkeeping.

Failing endpoints are handled here, not by the service's circuit breaker: as long as one
endpoint answers, the backend returns good verdicts and the breaker stays closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from engine.errors import BackendConfigError


@dataclass
class Endpoint:
    """One server of the pool and what this replica last saw of it."""

    url: str
    ejected_until: float = 0.0
    failures: int = 0
    calls: int = 0
    last_error: str | None = None

    def describe(self, now: float) -> dict[str, object]:
        return {
            "url": self.url,
            "healthy": self.ejected_until <= now,
            "calls": self.calls,
            "failures": self.failures,
            "last_error": self.last_error,
        }


class EndpointPool:
    """Round-robin over the endpoints that are not ejected."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        eject_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cleaned = [u.strip().rstrip("/") for u in urls if u.strip()]
        if not cleaned:
            raise BackendConfigError(
                "no model endpoint: set SWITCHBOARD_OPENAI_BASE_URLS to one or more base URLs "
                "separated by commas, e.g. http://vllm:8000/v1"
            )
        bad = [u for u in cleaned if not u.startswith(("http://", "https://"))]
        if bad:
            raise BackendConfigError(f"model endpoints must be http(s) URLs, not {bad}")
        self.endpoints = [Endpoint(u) for u in dict.fromkeys(cleaned)]
        self._eject_s = eject_s
        self._clock = clock
        self._next = 0

    def attempts(self) -> Iterator[Endpoint]:
        """Each endpoint at most once for one call: healthy ones in turn, then the others
        (the one ejected longest ago first)."""
        now = self._clock()
        n = len(self.endpoints)
        start = self._next
        self._next = (self._next + 1) % n
        ordered = [self.endpoints[(start + i) % n] for i in range(n)]
        healthy = [e for e in ordered if e.ejected_until <= now]
        ejected = sorted((e for e in ordered if e.ejected_until > now), key=_ejected_at)
        yield from healthy
        yield from ejected

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.calls += 1
        endpoint.ejected_until = 0.0
        endpoint.last_error = None

    def failed(self, endpoint: Endpoint, error: str) -> None:
        """A call failed on ``endpoint``: eject it."""
        endpoint.calls += 1
        endpoint.failures += 1
        self.down(endpoint, error)

    def down(self, endpoint: Endpoint, error: str) -> None:
        """``endpoint`` does not answer (a call or a probe said so): leave it out for a while."""
        endpoint.last_error = error
        endpoint.ejected_until = self._clock() + self._eject_s

    def up(self, endpoint: Endpoint) -> None:
        """A probe got an answer: take ``endpoint`` back."""
        endpoint.ejected_until = 0.0

    @property
    def healthy(self) -> bool:
        now = self._clock()
        return any(e.ejected_until <= now for e in self.endpoints)

    def describe(self) -> list[dict[str, object]]:
        now = self._clock()
        return [e.describe(now) for e in self.endpoints]


def _ejected_at(endpoint: Endpoint) -> float:
    return endpoint.ejected_until
