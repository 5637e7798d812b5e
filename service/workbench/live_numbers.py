"""The live page's numbers, from the service's own records and metrics; no chart library.

Decisions per category and the degraded rate come from the caller's tenant's audit store (a
window of the last hour and the last day); the review backlog from the same store, for the
queues the caller may work; model latency and health from this process's ``Metrics`` (the
newest calls, not an average since start-up). Bars are widths in percent, drawn by the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engine import CATEGORIES
from service.access.control import Caller
from service.audit import Backlog, Tally
from service.metrics import Metrics
from service.state import AppState

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1)}


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    percent: float  # of the largest bar, for its width


@dataclass(frozen=True)
class QueueLine:
    queue: str
    count: int
    oldest_age: str  # "3 h 20 min"


@dataclass(frozen=True)
class ModelLine:
    p50_ms: float | None
    p95_ms: float | None
    calls: int  # how many of the newest calls the percentiles read
    up: bool
    circuit_open: bool
    waiting: int


@dataclass(frozen=True)
class LiveNumbers:
    window: str
    decisions: int
    categories: list[Bar]
    degraded: int
    backlog: list[QueueLine]
    model: ModelLine
    shadow_active: bool
    at: str

    @property
    def degraded_rate(self) -> float | None:
        return round(self.degraded / self.decisions, 4) if self.decisions else None


def category_bars(tally: list[Tally]) -> list[Bar]:
    counts = {c.value: 0 for c in CATEGORIES}
    for t in tally:
        counts[t.category] = counts.get(t.category, 0) + t.count
    top = max(counts.values(), default=0) or 1
    return [Bar(name, n, round(100 * n / top, 1)) for name, n in counts.items()]


def queue_lines(backlog: list[Backlog], now: datetime) -> list[QueueLine]:
    return [
        QueueLine(b.queue or "(none)", b.count, age(now - datetime.fromisoformat(b.oldest)))
        for b in backlog
    ]


def age(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def model_line(state: AppState, metrics: Metrics) -> ModelLine:
    recent = list(metrics.recent_model_ms)
    return ModelLine(
        p50_ms=percentile(recent, 0.5),
        p95_ms=percentile(recent, 0.95),
        calls=len(recent),
        up=state.model_healthy,
        circuit_open=state.guard.breaker.state == "open",
        waiting=state.guard.waiting,
    )


async def gather(state: AppState, caller: Caller, window: str, now: datetime) -> LiveNumbers:
    """The numbers ``caller`` may see: its tenant's decisions and its own queues."""
    tenant, store = caller.scoped()
    since = (now - WINDOWS[window]).astimezone(timezone.utc).isoformat()
    tally = await store.tally(since, tenant=tenant.id)
    backlog = await store.backlog(tenant=tenant.id, queues=caller.principal.review_queues())
    return LiveNumbers(
        window=window,
        decisions=sum(t.count for t in tally),
        categories=category_bars(tally),
        degraded=sum(t.count for t in tally if t.degraded),
        backlog=queue_lines(backlog, now),
        model=model_line(state, state.metrics),
        shadow_active=state.shadow.run is not None,
        at=now.isoformat(timespec="seconds"),
    )
